"""What a worker no longer does for every trial, and that its results stay the same.

Tasks are built once per worker, a claim counts the study's trials without
joining their user attrs while the budget is far from spent, user attrs are
written in one transaction each time, and a worker's engines skip the ping
per checkout yet reconnect after their connections die.
"""

from __future__ import annotations

import uuid
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.workers.loop import WorkerOptions, run_worker
from lrsearch.workers.tasks import _registry
from lrsearch.workers.tasks._registry import TaskCache
from tests.conftest import postgres_url_or_skip

SMALL = {"n_train": 64, "n_val": 32, "n_features": 4, "hidden": 4}


def _create(url: str, name: str, **overrides: Any) -> storage.StudyRecord:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "task_options": SMALL,
        "budget": {"n_trials": 4, "max_epochs": 2},
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
    }
    raw.update(overrides)
    backend = storage.open_backend(url)
    try:
        return storage.create_study(backend, parse_definition(raw))
    finally:
        backend.dispose()


def _options(url: str, name: str) -> WorkerOptions:
    return WorkerOptions(
        storage_url=url,
        study=name,
        device="cpu",
        idle_exit=2.0,
        poll_interval=0.1,
        install_signal_handlers=False,
    )


def test_task_cache_builds_once_per_name_options_and_seed() -> None:
    cache = TaskCache(size=2)
    first = cache.get("synthetic", SMALL, 0)
    assert cache.get("synthetic", dict(reversed(list(SMALL.items()))), 0) is first
    assert cache.get("synthetic", SMALL, 1) is not first
    assert cache.get("synthetic", {**SMALL, "hidden": 8}, 0) is not first
    # Two entries at most: the least recently used one was dropped.
    assert cache.get("synthetic", SMALL, 0) is not first


def test_task_cache_does_not_keep_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = TaskCache()
    with pytest.raises(_registry.TaskError):
        cache.get("synthetic", {"bogus": 1}, 0)
    calls: list[str] = []
    real = _registry.get_task
    monkeypatch.setattr(_registry, "get_task", lambda n, o=None: calls.append(n) or real(n, o))
    with pytest.raises(_registry.TaskError):
        cache.get("synthetic", {"bogus": 1}, 0)
    assert calls == ["synthetic"]


def test_a_worker_builds_its_task_once_for_all_its_trials(
    sqlite_url: str, study_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(sqlite_url, study_name)
    built: list[str] = []
    real = _registry.get_task
    monkeypatch.setattr(_registry, "get_task", lambda n, o=None: built.append(n) or real(n, o))
    stats = run_worker(_options(sqlite_url, study_name))
    assert stats.trials == 4
    assert built == ["synthetic"]


def test_claim_counts_answer_only_below_the_budget(sqlite_url: str, study_name: str) -> None:
    record = _create(sqlite_url, study_name, budget={"n_trials": 3, "max_epochs": 2})
    backend = storage.open_backend(sqlite_url)
    try:
        study = storage.load_optuna_study(backend, record)
        study.enqueue_trial({"learning_rate": 0.01})
        with backend.engine.connect() as conn:
            assert storage._budget.claim_counts(conn, record) == (1, 1)
        claimed = []
        for _ in range(3):
            trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
            assert trial is not None
            claimed.append(trial)
        with backend.engine.connect() as conn:
            # The budget is reached: the full count (retries, confirmations) decides.
            assert storage._budget.claim_counts(conn, record) is None
            assert storage.budget_counts(conn, record).remaining == 0
        assert storage.claim_trial(backend, study, worker="w:1") is None
        frozen = [backend.optuna_storage.get_trial(t._trial_id) for t in claimed]
        # The enqueued trial was popped first, the others created; all carry their worker.
        assert frozen[0].system_attrs["fixed_params"] == {"learning_rate": 0.01}
        assert all("fixed_params" not in t.system_attrs for t in frozen[1:])
        assert [t.number for t in frozen] == [0, 1, 2]
        assert all(t.user_attrs == {"worker": "w:1", "device": "cpu"} for t in frozen)
    finally:
        backend.dispose()


def test_a_retry_is_claimed_with_its_attempt_and_origin(sqlite_url: str, study_name: str) -> None:
    record = _create(sqlite_url, study_name, budget={"n_trials": 2, "max_epochs": 2})
    backend = storage.open_backend(sqlite_url)
    try:
        study = storage.load_optuna_study(backend, record)
        first = storage.claim_trial(backend, study, worker="w:1")
        assert first is not None
        storage.give_back(
            backend, study, first._trial_id, reason="interrupted", definition=record.definition
        )
        retry = storage.claim_trial(backend, study, worker="w:2")
        assert retry is not None
        with backend.engine.connect() as conn:
            run = conn.execute(
                sa.select(storage._tables.trial_runs).where(
                    storage._tables.trial_runs.c.trial_id == retry._trial_id
                )
            ).one()
        assert (run.number, run.attempt, run.retry_of) == (1, 1, 0)
    finally:
        backend.dispose()


def test_user_attrs_are_written_together_or_not_at_all(storage_url: str, study_name: str) -> None:
    record = _create(storage_url, study_name)
    backend = storage.open_backend(storage_url)
    try:
        study = storage.load_optuna_study(backend, record)
        trial = storage.claim_trial(backend, study, worker="w:1")
        assert trial is not None
        attrs = {"lr_curve": [0.1, 0.05], "metrics": [{"epoch": 0}], "epochs_run": 2}
        storage.set_trial_user_attrs(backend.optuna_storage, trial._trial_id, attrs)
        stored = backend.optuna_storage.get_trial(trial._trial_id).user_attrs
        assert {k: stored[k] for k in attrs} == attrs
        study.tell(trial, 0.5)
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_user_attrs(backend.optuna_storage, trial._trial_id, {"late": 1})
        assert "late" not in backend.optuna_storage.get_trial(trial._trial_id).user_attrs
    finally:
        backend.dispose()


def test_a_worker_records_the_same_attrs_as_before(sqlite_url: str, study_name: str) -> None:
    _create(sqlite_url, study_name)
    run_worker(_options(sqlite_url, study_name))
    backend = storage.open_backend(sqlite_url)
    try:
        record = storage.get_study(backend, study_name)
        trials = storage.load_optuna_study(backend, record).get_trials()
    finally:
        backend.dispose()
    assert len(trials) == 4
    for t in trials:
        assert t.state == TrialState.COMPLETE
        assert {"worker", "device", "lr_curve", "metrics", "epochs_run"} <= set(t.user_attrs)
        assert len(t.user_attrs["lr_curve"]) == len(t.user_attrs["metrics"]) == 2


def _kill_sessions(url: str, application_name: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": application_name},
                ).all()
            )
    finally:
        engine.dispose()


def test_without_pre_ping_a_dead_connection_fails_once_then_reconnects(study_name: str) -> None:
    url = postgres_url_or_skip()
    _create(url, study_name)
    name = f"ovh-test-{uuid.uuid4().hex[:8]}"
    backend = storage.open_backend(url, application_name=name, pre_ping=False)
    try:
        assert backend.engine.pool._pre_ping is False  # type: ignore[attr-defined]
        assert backend.optuna_storage.engine.pool._pre_ping is False  # type: ignore[attr-defined]
        record = storage.get_study(backend, study_name)
        study = storage.load_optuna_study(backend, record)
        assert _kill_sessions(url, name) >= 2  # ours and Optuna's pooled sessions
        with pytest.raises(storage.StorageUnavailableError):
            storage.get_study(backend, study_name)
        with pytest.raises(storage.StorageUnavailableError):
            backend.optuna_storage.get_all_trials(record.study_id)
        # The failure invalidated each pool: the next calls connect afresh.
        assert storage.get_study(backend, study_name).name == study_name
        trial = storage.claim_trial(backend, study, worker="w:1")
        assert trial is not None
    finally:
        backend.dispose()
    default = storage.open_backend(url)
    try:
        assert default.engine.pool._pre_ping is True  # type: ignore[attr-defined]
    finally:
        default.dispose()
