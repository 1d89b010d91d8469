"""The pull loop against real storage: budgets, failures, pruning, pause, two processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.storage._tables import trial_results
from lrsearch.workers import _studies
from lrsearch.workers.loop import TrialOutcome, Worker, WorkerOptions, run_worker
from tests.conftest import postgres_url_or_skip


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
            "learning_rate": {"low": 50.0, "high": 100.0, "log": True},
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
        budget={"n_trials": 8, "max_epochs": 8},
        pruner={"type": "median", "min_epochs": 1},
        search_space={"schedules": ["step"], "warmup_epochs": 0},
    )
    backend = storage.open_backend(sqlite_url)
    study = storage.load_optuna_study(backend, record)
    base = {"batch_size": 64, "dropout": 0.0, "weight_init": "default"}
    step = {"schedule": "step", "step.step_size": 10, "step.gamma": 0.5}
    # Five good trials: the median pruner's start-up trials. A sixth good one
    # could be pruned: each trial trains with its own seed, so equal configs
    # give slightly different curves and one sits below their median.
    for lr in [0.1] * 5 + [1.0e-4] * 3:
        storage.enqueue_fixed(backend, study, record, {**base, **step, "learning_rate": lr})
    backend.dispose()
    run_worker(_options(sqlite_url, study_name))
    trials = _trials(sqlite_url, study_name)
    good, bad = trials[:5], trials[5:]
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
@pytest.mark.serial  # timing-sensitive under load
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


# -- robustness: reconnects, failing studies, poison rows ----------------------


def _lrs(url: str, name: str) -> list[float]:
    return [t.params["learning_rate"] for t in _trials(url, name)]


def test_a_seeded_sampler_goes_on_after_a_reconnect_instead_of_replaying(
    storage_url: str, study_name: str
) -> None:
    _create(storage_url, study_name, budget={"n_trials": 6, "max_epochs": 1})
    worker = Worker(_options(storage_url, study_name))

    def reconnect(_outcome: TrialOutcome) -> None:
        # What the loop does when the database goes away between trials: drop
        # the connection (and everything built on it), reconnect on the next claim.
        worker._drop_connection()

    worker.on_trial = reconnect
    assert worker.run().trials == 6
    lrs = _lrs(storage_url, study_name)
    assert len(set(lrs)) == 6, lrs


def test_one_seeded_worker_replays_the_same_trials_run_to_run(
    sqlite_url: str, study_name: str
) -> None:
    for run in ("a", "b"):
        _create(sqlite_url, f"{study_name}-{run}", budget={"n_trials": 4, "max_epochs": 1})
        run_worker(_options(sqlite_url, f"{study_name}-{run}"))
    first, second = _lrs(sqlite_url, f"{study_name}-a"), _lrs(sqlite_url, f"{study_name}-b")
    assert first == second
    assert len(set(first)) == 4


def test_sampler_slots_differ_per_worker_of_a_study(sqlite_url: str, study_name: str) -> None:
    record = _create(sqlite_url, study_name)
    backend = storage.open_backend(sqlite_url)
    try:
        assert [storage.sampler_slot(backend, record) for _ in range(3)] == [0, 1, 2]
    finally:
        backend.dispose()


def test_a_study_whose_trials_all_fail_alike_is_marked_failed_and_resume_retries(
    storage_url: str, study_name: str, tmp_path: Any
) -> None:
    # A task the worker cannot load: every trial would fail the same way.
    _create(
        storage_url, study_name, task="npz-classifier", budget={"n_trials": 12, "max_epochs": 2}
    )
    missing = {"path": str(tmp_path / "missing.npz")}
    stats = run_worker(_options(storage_url, study_name, task_options=missing, idle_exit=30.0))
    assert stats.trials == 3  # exits at once: the study is failed, not idle
    trials = _trials(storage_url, study_name)
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    backend = storage.open_backend(storage_url)
    try:
        record = storage.get_study(backend, study_name)
        assert record.state == "failed"
        assert record.state_reason is not None
        assert "3 trials in a row failed with TaskDataError" in record.state_reason
        study = storage.load_optuna_study(backend, record)
        assert storage.claim_trial(backend, study, worker="w:1") is None
        storage.change_state(backend, study_name, "resume")
        again = storage.claim_trial(backend, study, worker="w:1")
        assert again is not None
        storage.finish_trial(backend, study, again, state=TrialState.COMPLETE, value=0.5)
    finally:
        backend.dispose()


def test_failures_of_different_classes_do_not_stop_a_study(
    sqlite_url: str, study_name: str
) -> None:
    record = _create(
        sqlite_url,
        study_name,
        budget={"n_trials": 5, "max_epochs": 1, "max_consecutive_failures": 2},
    )
    backend = storage.open_backend(sqlite_url)
    try:
        study = storage.load_optuna_study(backend, record)
        for error in (
            "TaskDataError: x",
            "diverged: nan",
            "ValueError: y",
            "oom: z",
            "KeyError: k",
        ):
            trial = storage.claim_trial(backend, study, worker="w:1")
            assert trial is not None
            storage.finish_trial(
                backend, study, trial, state=TrialState.FAIL, user_attrs={"error": error}
            )
        assert storage.get_study(backend, study_name).state == "running"
    finally:
        backend.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def own_database(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A database of this test's own (SQLite file, or a scratch PostgreSQL database).

    The worker below serves every running study; on the shared test server it
    would take other tests' trials.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    admin = sa.create_engine(postgres_url_or_skip(), isolation_level="AUTOCOMMIT")
    name = f"lrsearch_own_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_poison_row_and_a_broken_study_do_not_stop_the_worker(
    own_database: str, study_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = own_database
    poisoned = _create(url, study_name + "-poison", budget={"n_trials": 1, "max_epochs": 1})
    broken = _create(url, study_name + "-broken", budget={"n_trials": 2, "max_epochs": 1})
    healthy = _create(url, study_name + "-ok", budget={"n_trials": 3, "max_epochs": 1})
    backend = storage.open_backend(url)
    try:
        # A finished trial whose summary row overflows an INTEGER column, written
        # past every validation, whose worker died before the row: before the
        # fix, the sweep of every later worker raised on it.
        study = storage.load_optuna_study(backend, poisoned)
        trial = storage.claim_trial(backend, study, worker="dead:1")
        assert trial is not None
        trial.suggest_categorical("batch_size", [10**20])
        study.tell(trial, 0.5)
        # A study whose Optuna study is gone under our record: it cannot be loaded.
        optuna.delete_study(study_name=broken.optuna_name, storage=backend.optuna_storage)
    finally:
        backend.dispose()
    monkeypatch.setattr(_studies, "MAX_STUDY_SKIP_S", 0.05)
    stats = run_worker(_options(url, None, idle_exit=1.5))
    assert [t.state for t in _trials(url, healthy.name)] == [TrialState.COMPLETE] * 3
    poison_trials = _trials(url, poisoned.name)
    assert [t.state for t in poison_trials] == [TrialState.COMPLETE]
    assert stats.trials == 3
    backend = storage.open_backend(url)
    try:
        record = storage.get_study(backend, broken.name)
        assert record.state == "failed"
        assert "3 errors in a row" in (record.state_reason or "")
        with backend.engine.connect() as conn:
            rows = conn.execute(
                sa.select(trial_results.c.number, trial_results.c.batch_size, trial_results.c.error)
                .where(trial_results.c.study_id == poisoned.study_id)
                .order_by(trial_results.c.number)
            ).all()
        assert [r.number for r in rows] == [0]
        assert rows[0].batch_size is None
        assert "unrecordable" in rows[0].error
        assert storage.sweep_stale_trials(backend, grace_s=60) == {}
    finally:
        backend.dispose()
