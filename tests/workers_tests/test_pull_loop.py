"""The pull loop against real storage: budgets, failures, pruning, pause, two processes."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.workers.loop import TrialOutcome, WorkerOptions, run_worker


def _create(url: str, name: str, **overrides: Any) -> storage.StudyRecord:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "budget": {"n_trials": 6, "max_epochs": 4},
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
    }
    raw.update(overrides)
    backend = storage.open_backend(url)
    try:
        return storage.create_study(backend, parse_definition(raw))
    finally:
        backend.dispose()


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    rdb = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=rdb).get_trials()
    finally:
        rdb.engine.dispose()


def _options(url: str, name: str | None, **kw: Any) -> WorkerOptions:
    return WorkerOptions(
        storage_url=url,
        study=name,
        device="cpu",
        idle_exit=kw.pop("idle_exit", 2.0),
        poll_interval=0.1,
        install_signal_handlers=False,
        task_options=kw.pop("task_options", {}),
        **kw,
    )


def test_worker_finishes_exactly_the_budget_and_records_curves(
    storage_url: str, study_name: str
) -> None:
    _create(storage_url, study_name)
    seen: list[TrialOutcome] = []
    stats = run_worker(_options(storage_url, study_name), on_trial=seen.append)
    trials = _trials(storage_url, study_name)
    assert stats.trials == 6 == len(seen) == len(trials)
    assert sorted(t.number for t in trials) == list(range(6))
    for t in trials:
        assert t.state == TrialState.COMPLETE
        epochs = t.user_attrs["epochs_run"]
        assert epochs == 4
        assert sorted(t.intermediate_values) == list(range(epochs))
        assert len(t.user_attrs["lr_curve"]) == epochs
        assert [m["epoch"] for m in t.user_attrs["metrics"]] == list(range(epochs))
        assert t.user_attrs["worker"].endswith(f":{os.getpid()}")
        assert t.value == pytest.approx(t.intermediate_values[epochs - 1])
        assert "schedule" in t.params
        assert "learning_rate" in t.params


def test_a_failing_task_fails_its_trials_and_the_worker_goes_on(
    sqlite_url: str, study_name: str, tmp_path: Any
) -> None:
    # The npz task pointed at a file that does not exist: every trial raises.
    _create(sqlite_url, study_name, task="npz-classifier", budget={"n_trials": 3, "max_epochs": 2})
    missing = str(tmp_path / "missing.npz")
    stats = run_worker(_options(sqlite_url, study_name, task_options={"path": missing}))
    trials = _trials(sqlite_url, study_name)
    assert stats.trials == 3
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    for t in trials:
        assert "missing.npz" in t.user_attrs["error"]


def test_a_diverging_trial_fails_with_reason_diverged(sqlite_url: str, study_name: str) -> None:
    _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 2, "max_epochs": 6},
        search_space={
            "schedules": ["exponential"],
            "learning_rate": {"low": 1.0e6, "high": 1.0e7, "log": True},
            "warmup_epochs": 0,
        },
    )
    run_worker(_options(sqlite_url, study_name))
    trials = _trials(sqlite_url, study_name)
    assert len(trials) == 2
    for t in trials:
        assert t.state == TrialState.FAIL
        assert t.user_attrs["error"].startswith("diverged")
        assert t.user_attrs["epochs_run"] < 6


def test_bad_trials_are_pruned_before_their_budget(sqlite_url: str, study_name: str) -> None:
    record = _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 9, "max_epochs": 8},
        pruner={"type": "median", "min_epochs": 1},
        search_space={"schedules": ["step"], "warmup_epochs": 0},
    )
    backend = storage.open_backend(sqlite_url)
    study = storage.load_optuna_study(backend, record)
    base = {"batch_size": 64, "dropout": 0.0, "weight_init": "default"}
    step = {"schedule": "step", "step.step_size": 10, "step.gamma": 0.5}
    for lr in [0.1] * 6 + [1.0e-4] * 3:
        storage.enqueue_fixed(backend, study, record, {**base, **step, "learning_rate": lr})
    backend.dispose()
    run_worker(_options(sqlite_url, study_name))
    trials = _trials(sqlite_url, study_name)
    good, bad = trials[:6], trials[6:]
    assert all(t.state == TrialState.COMPLETE for t in good)
    for t in bad:
        assert t.params["learning_rate"] == pytest.approx(1.0e-4)
        assert t.state == TrialState.PRUNED
        assert t.user_attrs["epochs_run"] < 8


def test_paused_and_cancelled_studies_get_no_trials(sqlite_url: str, study_name: str) -> None:
    _create(sqlite_url, study_name + "-p")
    _create(sqlite_url, study_name + "-c")
    _create(sqlite_url, study_name + "-r", budget={"n_trials": 2, "max_epochs": 2})
    backend = storage.open_backend(sqlite_url)
    storage.change_state(backend, study_name + "-p", "pause")
    storage.change_state(backend, study_name + "-c", "cancel")
    backend.dispose()
    stats = run_worker(_options(sqlite_url, None, idle_exit=1.0))
    assert stats.trials == 2
    assert len(_trials(sqlite_url, study_name + "-r")) == 2
    assert _trials(sqlite_url, study_name + "-p") == []
    assert _trials(sqlite_url, study_name + "-c") == []


def test_max_trials_stops_the_worker(sqlite_url: str, study_name: str) -> None:
    _create(sqlite_url, study_name)
    stats = run_worker(_options(sqlite_url, study_name, max_trials=2))
    assert stats.trials == 2
    assert len(_trials(sqlite_url, study_name)) == 2


@pytest.mark.postgres
@pytest.mark.slow
def test_two_worker_processes_share_one_postgres_study(postgres_url: str, study_name: str) -> None:
    _create(postgres_url, study_name, budget={"n_trials": 12, "max_epochs": 3})
    env = {**os.environ, "LRSEARCH_STORAGE": postgres_url}
    cmd = [
        sys.executable,
        "-m",
        "lrsearch.cli.main",
        "worker",
        "--study",
        study_name,
        "--device",
        "cpu",
        "--idle-exit",
        "5",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=180)[0].decode() for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = _trials(postgres_url, study_name)
    assert len(trials) == 12
    assert sorted(t.number for t in trials) == list(range(12))
    assert all(t.state.is_finished() for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, f"both processes should have trained trials: {workers}"
