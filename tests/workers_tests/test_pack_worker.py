"""``lrsearch worker --pack K`` against real storage and the real fused trainer.

Every test trains with :class:`~lrsearch.workers.packing.PackedRun` on tiny
synthetic data. Only the out-of-memory tests wrap it in a test double that
raises CUDA's out-of-memory error (no GPU here); that path is not exercised on
a GPU by these tests.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from lrsearch import storage
from lrsearch.cli.main import app
from lrsearch.search_space import DefinitionError, parse_definition
from lrsearch.workers import _pack_loop
from lrsearch.workers.loop import TrialOutcome, WorkerOptions, run_worker
from lrsearch.workers.packing import PackedRun, SlotEpoch

TINY = {"n_train": 256, "n_val": 128}
PACK_LINE = re.compile(r"pack of (\d+) \(K=(\d+)\) on \S+: trials (.*)$")


def _create(url: str, name: str, **overrides: Any) -> storage.StudyRecord:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "budget": {"n_trials": 6, "max_epochs": 3},
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        "confirm": {"top_k": 0},
        "search_space": {"warmup_epochs": 0},
    }
    raw.update(overrides)
    backend = storage.open_backend(url)
    try:
        return storage.create_study(backend, parse_definition(raw))
    finally:
        backend.dispose()


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    backend = storage.open_backend(url)
    try:
        study = optuna.load_study(study_name=name, storage=backend.optuna_storage)
        return study.get_trials()
    finally:
        backend.dispose()


def _options(url: str, name: str, **kw: Any) -> WorkerOptions:
    return WorkerOptions(
        storage_url=url,
        study=name,
        device="cpu",
        idle_exit=kw.pop("idle_exit", 2.0),
        poll_interval=0.1,
        install_signal_handlers=False,
        task_options=TINY,
        **kw,
    )


def _packs(caplog: pytest.LogCaptureFixture) -> list[list[int]]:
    """The trial numbers of each "pack of" line, in order."""
    found = []
    for rec in caplog.records:
        match = PACK_LINE.search(rec.getMessage())
        if match:
            found.append([int(n) for n in re.findall(r"#(\d+)", match.group(3))])
    return found


def _lives(packs: list[list[int]]) -> list[set[int]]:
    """Every trial of each pack's life: consecutive lines that share a trial are one pack."""
    lives: list[set[int]] = []
    for numbers in packs:
        if lives and lives[-1] & set(numbers):
            lives[-1] |= set(numbers)
        else:
            lives.append(set(numbers))
    return lives


def _enqueue(url: str, record: storage.StudyRecord, configs: list[dict[str, Any]]) -> None:
    backend = storage.open_backend(url)
    try:
        study = storage.load_optuna_study(backend, record)
        for params in configs:
            storage.enqueue_fixed(backend, study, record, params)
    finally:
        backend.dispose()


def test_a_packed_worker_finishes_the_budget_with_trials_like_unpacked_ones(
    storage_url: str, study_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lrsearch.workers.loop")
    space = {"batch_size": [32, 64], "optimizer": ["sgd", "adam"], "warmup_epochs": 0}
    _create(storage_url, study_name, budget={"n_trials": 10, "max_epochs": 3}, search_space=space)
    _create(
        storage_url, study_name + "-u", budget={"n_trials": 2, "max_epochs": 3}, search_space=space
    )
    seen: list[TrialOutcome] = []
    stats = run_worker(_options(storage_url, study_name, pack=4), on_trial=seen.append)
    run_worker(_options(storage_url, study_name + "-u"))

    trials = _trials(storage_url, study_name)
    assert stats.trials == 10 == len(seen) == len(trials)  # the budget, never more
    assert sorted(t.number for t in trials) == list(range(10))
    unpacked = _trials(storage_url, study_name + "-u")
    keys = set(unpacked[0].user_attrs)
    for t in trials:
        assert t.state == TrialState.COMPLETE
        assert set(t.user_attrs) == keys
        assert t.user_attrs["epochs_run"] == 3 == len(t.user_attrs["lr_curve"])
        assert [m["epoch"] for m in t.user_attrs["metrics"]] == [0, 1, 2]
        assert set(t.user_attrs["metrics"][0]) == set(unpacked[0].user_attrs["metrics"][0])
        assert sorted(t.intermediate_values) == [0, 1, 2]
        assert t.value == pytest.approx(t.intermediate_values[2])
        assert t.value == pytest.approx(t.user_attrs["metrics"][-1]["val_accuracy"])
    packs = _packs(caplog)
    assert max(len(p) for p in packs) == 4, packs
    by_number = {t.number: t for t in trials}
    for numbers in packs:
        shapes = {
            (by_number[n].params["batch_size"], by_number[n].params["optimizer"]) for n in numbers
        }
        assert len(shapes) == 1, (numbers, shapes)
    assert sorted(n for p in packs for n in p) == list(range(10))  # every trial was packed


def test_pruned_trials_leave_the_pack_and_their_slots_are_refilled(
    sqlite_url: str, study_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lrsearch.workers.loop")
    record = _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 17, "max_epochs": 6},
        pruner={"type": "median", "min_epochs": 1},
        search_space={
            "schedules": ["step"],
            "warmup_epochs": 0,
            "learning_rate": {"low": 1.0e-4, "high": 1.0, "log": True},
        },
    )
    base = {"batch_size": 64, "dropout": 0.0, "weight_init": "default"}
    step = {"schedule": "step", "step.step_size": 10, "step.gamma": 0.5}
    good, bad = 0.1, 1.0e-4
    # Five good trials first: the median pruner's start-up trials, trained unpacked.
    lrs = [good] * 5 + [bad, good, bad, good, bad, good, bad, bad, good, bad, good, bad]
    _enqueue(sqlite_url, record, [{**base, **step, "learning_rate": lr} for lr in lrs])
    run_worker(_options(sqlite_url, study_name, max_trials=5))
    stats = run_worker(_options(sqlite_url, study_name, pack=4))

    trials = _trials(sqlite_url, study_name)
    assert stats.trials == 12
    assert len(trials) == 17
    for t in trials[5:]:
        lr = t.params["learning_rate"]
        if lr == pytest.approx(bad):
            assert t.state == TrialState.PRUNED
            assert t.user_attrs["epochs_run"] < 6
        assert len(t.user_attrs["lr_curve"]) == t.user_attrs["epochs_run"]
        assert len(t.intermediate_values) == len(t.user_attrs["metrics"])
    assert any(t.state == TrialState.COMPLETE for t in trials[5:])
    # Trials joined packs whose earlier trials were still training.
    lives = _lives(_packs(caplog))
    assert max(len(life) for life in lives) > 4, lives


def _stop_when_running(
    url: str, name: str, worker_stop: Callable[[], None], n: int
) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = [
                t
                for t in _trials(url, name)
                if t.state == TrialState.RUNNING and len(t.intermediate_values) >= 2
            ]
            if len(running) >= n:
                break
            time.sleep(0.05)
        worker_stop()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_stop_hands_back_every_trial_of_the_pack_and_another_worker_finishes(
    sqlite_url: str, study_name: str
) -> None:
    from lrsearch.workers.loop import Worker

    _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 4, "max_epochs": 20},
        search_space={"batch_size": [32], "warmup_epochs": 0},
    )
    worker = Worker(_options(sqlite_url, study_name, pack=4))
    watcher = _stop_when_running(sqlite_url, study_name, worker.request_stop, 4)
    stats = worker.run()
    watcher.join(timeout=10)

    trials = _trials(sqlite_url, study_name)
    assert stats.trials == 0
    handed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(handed) == 4, [(t.number, t.state) for t in trials]
    for t in handed:
        assert t.user_attrs["error"] == "interrupted: worker stopped"
    retries = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs["retry_of"] for t in retries) == [t.number for t in handed]

    stats = run_worker(_options(sqlite_url, study_name, pack=4))
    trials = _trials(sqlite_url, study_name)
    assert stats.trials == 4
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["retry_of"] for t in done) == [t.number for t in handed]
    assert len(trials) == 8


def test_a_study_with_packing_off_runs_one_trial_at_a_time(
    sqlite_url: str, study_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lrsearch.workers.loop")
    _create(sqlite_url, study_name, budget={"n_trials": 3, "max_epochs": 2}, packing=False)
    stats = run_worker(_options(sqlite_url, study_name, pack=4))
    assert stats.trials == 3
    assert _packs(caplog) == []
    trials = sorted(_trials(sqlite_url, study_name), key=lambda t: t.datetime_start)
    for before, after in itertools.pairwise(trials):
        assert before.datetime_complete is not None
        assert after.datetime_start is not None
        assert before.datetime_complete <= after.datetime_start


# -- CUDA out of memory (a test double: no GPU here) ----------------------------


class OomPackedRunDouble(PackedRun):
    """The real PackedRun, raising CUDA's out-of-memory error while it holds over ``fits`` slots."""

    fits = 2
    raised = 0

    def run_epoch(
        self, stop_requested: Callable[[], bool] | None = None
    ) -> dict[Hashable, SlotEpoch]:
        if len(self) > type(self).fits:
            type(self).raised += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().run_epoch(stop_requested)


@pytest.fixture
def oom_double(monkeypatch: pytest.MonkeyPatch) -> type[OomPackedRunDouble]:
    monkeypatch.setattr(OomPackedRunDouble, "raised", 0)
    monkeypatch.setattr(_pack_loop, "PackedRun", OomPackedRunDouble)
    return OomPackedRunDouble


def test_out_of_memory_in_a_pack_shrinks_it_instead_of_failing_its_trials(
    sqlite_url: str,
    study_name: str,
    caplog: pytest.LogCaptureFixture,
    oom_double: type[OomPackedRunDouble],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="lrsearch.workers.loop")
    monkeypatch.setattr(oom_double, "fits", 2)
    _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 6, "max_epochs": 3},
        search_space={"batch_size": [64], "warmup_epochs": 0},
    )
    stats = run_worker(_options(sqlite_url, study_name, pack=4))
    trials = _trials(sqlite_url, study_name)
    assert stats.by_state == {"COMPLETE": 6}
    assert oom_double.raised == 1  # the first pack of 4; after it, packs of 2 for this worker
    assert "CUDA out of memory in a pack of 4 on cpu; packs of 2 from now on" in caplog.text
    assert max(len(p) for p in _packs(caplog)[1:]) == 2
    for t in trials:
        assert "error" not in t.user_attrs
        assert sorted(t.intermediate_values) == [0, 1, 2]
        assert len(t.user_attrs["lr_curve"]) == 3 == len(t.user_attrs["metrics"])


def test_out_of_memory_of_a_lone_trial_prunes_it_as_unpacked(
    sqlite_url: str,
    study_name: str,
    oom_double: type[OomPackedRunDouble],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oom_double, "fits", 0)
    _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 4, "max_epochs": 3},
        sampler={"type": "tpe", "seed": 1},
        search_space={"batch_size": [64], "warmup_epochs": 0},
    )
    stats = run_worker(_options(sqlite_url, study_name, pack=4))
    assert stats.by_state == {"PRUNED": 4}
    for t in _trials(sqlite_url, study_name):
        assert t.user_attrs["error"].startswith("oom: CUDA out of memory")
        assert t.user_attrs["infeasible"] == {"batch_size": 64, "device": "cpu", "memory_gb": None}
        assert t.constraints == {"oom": 1.0}
        assert "retry_of" not in t.user_attrs


# -- claims, definition, CLI ----------------------------------------------------


def test_a_claim_with_fixed_values_takes_only_agreeing_waiting_trials_within_budget(
    sqlite_url: str, study_name: str
) -> None:
    record = _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 3, "max_epochs": 2},
        search_space={"batch_size": [32, 64], "warmup_epochs": 0},
    )
    _enqueue(sqlite_url, record, [{"batch_size": 32}, {"batch_size": 64}])
    backend = storage.open_backend(sqlite_url)
    try:
        study = storage.load_optuna_study(backend, record)
        fixed = {"batch_size": 64}
        first = storage.claim_trial(backend, study, worker="w:1", fixed=fixed)
        assert first is not None
        assert first.number == 1
        second = storage.claim_trial(backend, study, worker="w:1", fixed=fixed)
        assert second is not None
        assert second.number == 2
        assert second.suggest_categorical("batch_size", [32, 64]) == 64
        # The budget's last trial is the waiting #0: not ours to take.
        assert storage.claim_trial(backend, study, worker="w:1", fixed=fixed) is None
        third = storage.claim_trial(backend, study, worker="w:1")
        assert third is not None
        assert third.number == 0
    finally:
        backend.dispose()


def test_packing_is_on_by_default_and_must_be_a_boolean() -> None:
    assert parse_definition({"name": "p", "task": "synthetic"}).packing is True
    assert parse_definition({"name": "p", "task": "synthetic", "packing": False}).packing is False
    with pytest.raises(DefinitionError) as err:
        parse_definition({"name": "p", "task": "synthetic", "packing": "no"})
    assert "packing" in str(err.value)


def test_worker_cli_has_pack_and_rejects_bad_values() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--pack" in result.output
    for bad in ("0", "257", "four"):
        result = runner.invoke(app, ["worker", "--pack", bad])
        assert result.exit_code == 2, result.output
        assert "--pack" in result.output
    result = runner.invoke(app, ["worker"], env={"LRSEARCH_PACK": "0"})
    assert result.exit_code == 2
    assert "LRSEARCH_PACK" in result.output


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [(["--pack", "3"], {}, "3"), ([], {"LRSEARCH_PACK": "auto"}, "auto")],
    ids=["option", "auto-from-env"],
)
def test_the_gpu_supervisor_passes_pack_to_each_worker(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], expected: str
) -> None:
    from lrsearch.workers import supervisor

    started: list[list[str]] = []

    class Recorder:
        def __init__(self, ids: list[str], child: list[str], **_kw: Any) -> None:
            started.append(child)

        def run(self) -> int:
            return 0

    monkeypatch.setattr(supervisor, "Supervisor", Recorder)
    env = {"LRSEARCH_STORAGE": "sqlite:///:memory:", **env}
    result = CliRunner().invoke(app, ["worker", "--gpus", "0,1", "--device", "cpu", *args], env=env)
    assert result.exit_code == 0, result.output
    child = started[0]
    assert child[child.index("--pack") + 1] == expected
