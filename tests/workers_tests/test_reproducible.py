"""Reproducible by construction: replays, data_seed, and stable sampler slots.

Everything here runs the real pull loop in-process on real storage (a SQLite
file, and PostgreSQL where parametrized) with real PyTorch on a tiny task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from lrsearch import storage
from lrsearch.search_space import parse_definition, sample_config
from lrsearch.workers.loop import TrialOutcome, Worker, WorkerOptions, run_worker
from lrsearch.workers.training import train_seed
from tests.conftest import postgres_url_or_skip

_TASK_OPTIONS = {"n_train": 256, "n_val": 128}
# A fixed configuration: two studies that enqueue it train the very same thing.
_FIXED: dict[str, Any] = {
    "schedule": "step",
    "learning_rate": 0.05,
    "batch_size": 64,
    "dropout": 0.2,
    "weight_init": "default",
    "warmup_epochs": 0,
    "step.step_size": 2,
    "step.gamma": 0.5,
}


def _definition(name: str, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "task_options": _TASK_OPTIONS,
        "budget": {"n_trials": 8, "max_epochs": 4},
        "sampler": {"type": "tpe", "seed": 7},
        "pruner": {"type": "median", "min_epochs": 1},
    }
    raw.update(overrides)
    return raw


def _create(url: str, raw: dict[str, Any], enqueue: dict[str, Any] | None = None) -> None:
    backend = storage.open_backend(url)
    try:
        record = storage.create_study(backend, parse_definition(raw))
        if enqueue is not None:
            study = storage.load_optuna_study(backend, record)
            storage.enqueue_fixed(backend, study, record, enqueue)
    finally:
        backend.dispose()


def _options(url: str, name: str, **kw: Any) -> WorkerOptions:
    return WorkerOptions(
        storage_url=url,
        study=name,
        device="cpu",
        idle_exit=2.0,
        poll_interval=0.1,
        install_signal_handlers=False,
        **kw,
    )


def _record(url: str, name: str) -> list[tuple[Any, ...]]:
    """Per trial: number, state, params, value and every intermediate value."""
    rdb = optuna.storages.RDBStorage(url)
    try:
        trials = optuna.load_study(study_name=name, storage=rdb).get_trials()
    finally:
        rdb.engine.dispose()
    return [
        (t.number, t.state, t.params, t.value, dict(t.intermediate_values))
        for t in sorted(trials, key=lambda t: t.number)
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two fresh databases: two SQLite files, or PostgreSQL (fresh study names) twice."""
    if request.param == "sqlite":
        return (f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}")
    url = postgres_url_or_skip()
    return (url, url)


def test_one_worker_replays_the_same_params_and_values(
    two_urls: tuple[str, str], study_name: str
) -> None:
    records = []
    for run, url in enumerate(two_urls):
        name = f"{study_name}-{run}"
        _create(url, _definition(name))
        # Global RNG state must not leak into a trial: disturb it differently per run.
        torch.manual_seed(1000 + run)
        stats = run_worker(_options(url, name))
        assert stats.trials == 8
        records.append(_record(url, name))
    first, second = records
    assert first == second
    # Not a vacuous replay: the trials differ and each reported its epochs.
    assert len({r[2]["learning_rate"] for r in first}) == 8
    assert all(len(r[4]) >= 1 for r in first)


def test_the_split_follows_data_seed_not_the_sampler_seed(sqlite_url: str, study_name: str) -> None:
    curves = {}
    for label, sampler_seed, data_seed in (("a", 1, 5), ("b", 2, 5), ("c", 1, 6)):
        name = f"{study_name}-{label}"
        raw = _definition(
            name,
            budget={"n_trials": 1, "max_epochs": 3},
            sampler={"type": "random", "seed": sampler_seed},
            pruner={"type": "none"},
            data_seed=data_seed,
        )
        _create(sqlite_url, raw, enqueue=_FIXED)
        run_worker(_options(sqlite_url, name))
        (trial,) = _record(sqlite_url, name)
        assert trial[2] == _FIXED
        curves[label] = trial[4]
    # Same data_seed, different sampler seeds: the same split, the same run.
    assert curves["a"] == curves["b"]
    # Another data_seed: other generated data, so another curve.
    assert curves["a"] != curves["c"]


def test_data_seed_defaults_to_zero() -> None:
    assert parse_definition({"name": "x", "task": "synthetic"}).data_seed == 0


def test_the_training_seed_depends_on_data_seed_and_trial_number_only() -> None:
    seeds = {train_seed(d, n) for d in range(3) for n in range(50)}
    assert len(seeds) == 150
    torch.manual_seed(123)
    first = train_seed(4, 17)
    torch.manual_seed(456)
    assert train_seed(4, 17) == first


def _per_worker_params(url: str, name: str) -> list[list[dict[str, Any]]]:
    """Two workers that join one study in turn, three trials each: each one's params."""
    _create(url, _definition(name, sampler={"type": "random", "seed": 3}, pruner={"type": "none"}))
    out: list[list[dict[str, Any]]] = []
    for _ in range(2):
        seen: list[TrialOutcome] = []
        Worker(_options(url, name, max_trials=3), on_trial=seen.append).run()
        out.append([o.params for o in seen])
    return out


def test_each_worker_of_a_study_keeps_its_own_replayable_sampler_slot(
    sqlite_url: str, study_name: str
) -> None:
    first = _per_worker_params(sqlite_url, f"{study_name}-a")
    second = _per_worker_params(sqlite_url, f"{study_name}-b")
    # Slot 0 then slot 1, in the order the workers joined: the same run twice.
    assert first == second
    # Two slots, two different sequences: the second worker does not repeat the first.
    lrs = [p["learning_rate"] for worker in first for p in worker]
    assert len(set(lrs)) == 6
    # Slot 0 is the definition's seed itself: the first worker proposes what a
    # lone worker would.
    _create(
        sqlite_url,
        _definition(
            f"{study_name}-solo", sampler={"type": "random", "seed": 3}, pruner={"type": "none"}
        ),
    )
    solo: list[TrialOutcome] = []
    Worker(_options(sqlite_url, f"{study_name}-solo", max_trials=3), on_trial=solo.append).run()
    assert [o.params for o in solo] == first[0]


def test_a_retry_trains_with_the_seed_of_the_trial_it_repeats(
    sqlite_url: str, study_name: str
) -> None:
    # Reference: the fixed configuration trained as trial 0 of its own study.
    base = {"budget": {"n_trials": 1, "max_epochs": 3}, "pruner": {"type": "none"}}
    _create(sqlite_url, _definition(f"{study_name}-ref", **base), enqueue=_FIXED)
    run_worker(_options(sqlite_url, f"{study_name}-ref"))
    (reference,) = _record(sqlite_url, f"{study_name}-ref")

    # The same configuration claimed by a worker that dies: given back, so
    # trial 1 (retry_of 0) repeats it, and must train exactly like trial 0 would.
    name = f"{study_name}-retry"
    _create(sqlite_url, _definition(name, **base), enqueue=_FIXED)
    backend = storage.open_backend(sqlite_url)
    try:
        record = storage.get_study(backend, name)
        study = storage.load_optuna_study(backend, record)
        claimed = storage.claim_trial(backend, study, worker="dead:1")
        assert claimed is not None
        sample_config(claimed, record.definition)  # the worker's first step: params fixed
        storage.give_back(
            backend, study, claimed._trial_id, reason="killed", definition=record.definition
        )
    finally:
        backend.dispose()
    run_worker(_options(sqlite_url, name))
    failed, retry = _record(sqlite_url, name)
    assert failed[1] == optuna.trial.TrialState.FAIL
    assert retry[0] == 1
    assert retry[2] == _FIXED
    assert retry[4] == reference[4]
