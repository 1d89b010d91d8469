"""One contract for the trial life cycle, run on a real SQLite file and on real PostgreSQL.

Claim, report, finish, give back, stale, retry and budget exactness, first
driven call by call (crashes placed between two writes by making the second
one raise), then by three worker processes sharing one study, so that
SQLite's file lock and PostgreSQL's advisory lock are both exercised across
processes.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.storage import _retry
from lrsearch.storage._lock import _LOCK_NAMESPACE, _sqlite_lock_path
from lrsearch.storage._tables import trial_results, trial_runs
from lrsearch.workers.loop import WorkerOptions, run_worker
from tests.conftest import postgres_url_or_skip


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[storage.Backend]:
    url = (
        f"sqlite:///{tmp_path / 'lifecycle.db'}"
        if request.param == "sqlite"
        else postgres_url_or_skip()
    )
    handle = storage.open_backend(url)
    yield handle
    handle.dispose()


def _make(backend: storage.Backend, **budget: Any) -> storage.StudyRecord:
    definition = parse_definition(
        {
            "name": f"life-{uuid.uuid4().hex[:12]}",
            "task": "synthetic",
            "budget": {"n_trials": 3, "max_epochs": 2, "max_retries": 1, **budget},
            "sampler": {"type": "random", "seed": 3},
            "pruner": {"type": "none"},
            "search_space": {"schedules": ["step", "cosine"], "warmup_epochs": 0},
        }
    )
    return storage.create_study(backend, definition)


def _claim(
    backend: storage.Backend, study: optuna.Study, worker: str = "w:1", *, sample: bool = True
) -> optuna.Trial:
    trial = storage.claim_trial(backend, study, worker=worker, device="cpu")
    assert trial is not None
    if sample:
        trial.suggest_float("learning_rate", 0.01, 0.1, log=True)
    return trial


def _trials(backend: storage.Backend, record: storage.StudyRecord) -> list[FrozenTrial]:
    study = optuna.load_study(study_name=record.optuna_name, storage=backend.optuna_storage)
    return study.get_trials(deepcopy=False)


def _rows(backend: storage.Backend, record: storage.StudyRecord) -> dict[int, dict[str, Any]]:
    with backend.engine.connect() as conn:
        rows = conn.execute(
            sa.select(trial_results).where(trial_results.c.study_id == record.study_id)
        ).all()
    return {int(r.number): dict(r._mapping) for r in rows}


def _runs(backend: storage.Backend, record: storage.StudyRecord) -> int:
    with backend.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(trial_runs.c.study_id == record.study_id)
            ).scalar_one()
        )


def _assert_exact(backend: storage.Backend, record: storage.StudyRecord) -> list[FrozenTrial]:
    """Done with exactly its budget; every summary row agrees with Optuna, ``retried`` included."""
    trials = _trials(backend, record)
    retried = {int(t.user_attrs["retry_of"]) for t in trials if "retry_of" in t.user_attrs}
    assert all(t.state.is_finished() for t in trials), [t.state for t in trials]
    counted = [t for t in trials if t.state != TrialState.FAIL or t.number not in retried]
    assert len(counted) == record.n_trials
    with backend.engine.connect() as conn:
        counts = storage.budget_counts(conn, record)
    assert counts.done
    assert counts.finished - counts.retried == record.n_trials
    rows = _rows(backend, record)
    assert sorted(rows) == sorted(t.number for t in trials)
    for t in trials:
        assert rows[t.number]["state"] == t.state.name
        assert rows[t.number]["retried"] is (t.number in retried), t.number
    assert _runs(backend, record) == 0
    return trials


def test_claim_report_finish_writes_one_row_and_drops_the_run(backend: storage.Backend) -> None:
    record = _make(backend, n_trials=1)
    study = storage.load_optuna_study(backend, record)
    trial = _claim(backend, study)
    assert _runs(backend, record) == 1
    assert storage.heartbeat(backend, trial._trial_id) is True
    trial.report(0.4, 0)
    trial.report(0.6, 1)
    done = storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=0.6)
    assert done is not None
    assert done.state == TrialState.COMPLETE
    assert storage.claim_trial(backend, study, worker="w:2") is None
    assert storage.heartbeat(backend, trial._trial_id) is False
    [only] = _assert_exact(backend, record)
    assert only.user_attrs["worker"] == "w:1"
    assert _rows(backend, record)[0]["value"] == 0.6


def test_give_back_retries_with_the_same_params_until_max_retries(
    backend: storage.Backend,
) -> None:
    record = _make(backend, n_trials=1, max_retries=1)
    study = storage.load_optuna_study(backend, record)
    first = _claim(backend, study)
    assert storage.give_back(
        backend, study, first._trial_id, reason="interrupted: test", definition=record.definition
    )
    again = _claim(backend, study)
    assert again.params == first.params
    assert storage.give_back(
        backend, study, again._trial_id, reason="interrupted: test", definition=record.definition
    )
    # Attempts used up: the second failure counts, and nothing is left to claim.
    assert storage.claim_trial(backend, study, worker="w:1") is None
    trials = _assert_exact(backend, record)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert trials[1].user_attrs["retry_of"] == 0


def test_a_silent_trial_is_failed_as_stale_and_its_late_finish_records_nothing(
    backend: storage.Backend,
) -> None:
    record = _make(backend, n_trials=1)
    study = storage.load_optuna_study(backend, record)
    trial = _claim(backend, study)
    assert storage.sweep_stale_trials(backend, grace_s=60, study=record.name) == {}
    time.sleep(0.3)
    assert storage.sweep_stale_trials(backend, grace_s=0.2, study=record.name) == {record.name: [0]}
    late = storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=0.9)
    assert late is None
    retry = _claim(backend, study)
    assert retry.user_attrs["retry_of"] == 0
    storage.finish_trial(backend, study, retry, state=TrialState.COMPLETE, value=0.5)
    _assert_exact(backend, record)


def test_a_crash_between_the_retry_and_the_failure_is_completed_by_the_sweep(
    backend: storage.Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _make(backend, n_trials=2)
    study = storage.load_optuna_study(backend, record)
    trial = _claim(backend, study)

    def crash(*_: object) -> bool:
        raise RuntimeError("killed between the two writes")

    # The second write of a give-back raises: the process "dies" right after
    # the first one.
    monkeypatch.setattr(_retry, "_mark_failed", crash)
    with pytest.raises(RuntimeError):
        storage.give_back(
            backend, study, trial._trial_id, reason="interrupted", definition=record.definition
        )
    monkeypatch.undo()
    # The retry is already there and counted as one slot with its original.
    with backend.engine.connect() as conn:
        counts = storage.budget_counts(conn, record)
    assert (counts.running, counts.waiting, counts.retried, counts.remaining) == (1, 1, 1, 1)
    time.sleep(0.3)
    # The sweep fails the dead trial and does not enqueue a second retry.
    assert storage.sweep_stale_trials(backend, grace_s=0.2, study=record.name) == {record.name: [0]}
    trials = _trials(backend, record)
    assert [t.user_attrs.get("retry_of") for t in trials] == [None, 0]
    while (nxt := storage.claim_trial(backend, study, worker="w:2")) is not None:
        nxt.suggest_float("learning_rate", 0.01, 0.1, log=True)
        storage.finish_trial(backend, study, nxt, state=TrialState.COMPLETE, value=0.5)
    trials = _assert_exact(backend, record)
    assert len(trials) == 3
    assert trials[1].params == trials[0].params


def test_a_result_our_columns_cannot_hold_ends_fail_with_the_reason(
    backend: storage.Backend,
) -> None:
    record = _make(backend, n_trials=1)
    study = storage.load_optuna_study(backend, record)
    trial = _claim(backend, study)
    # As an unbounded definition could produce: fits Optuna, not an INTEGER column.
    trial.suggest_categorical("batch_size", [10**20])
    done = storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=0.7)
    assert done is not None
    assert done.state == TrialState.FAIL
    [failed] = _assert_exact(backend, record)
    assert failed.state == TrialState.FAIL
    assert "batch_size=100000000000000000000" in failed.user_attrs["error"]
    row = _rows(backend, record)[0]
    assert row["batch_size"] is None
    assert "unrecordable" in row["error"]


def _poison(backend: storage.Backend, record: storage.StudyRecord) -> None:
    """A finished trial whose summary row breaks an INTEGER column, never recorded."""
    study = storage.load_optuna_study(backend, record)
    trial = _claim(backend, study, worker="dead:1")
    trial.suggest_categorical("batch_size", [10**20])
    study.tell(trial, 0.5)  # the worker died before writing the summary row


def test_the_sweep_backfills_a_poison_row_and_goes_on_with_other_studies(
    fresh_backend: storage.Backend,
) -> None:
    # A sweep of every study with a short grace: on a database of its own, as it
    # would fail the running trials of other tests' studies on the shared server.
    backend = fresh_backend
    poisoned, healthy = _make(backend, n_trials=1), _make(backend, n_trials=1)
    _poison(backend, poisoned)
    study = storage.load_optuna_study(backend, healthy)
    silent = _claim(backend, study, worker="dead:2")
    time.sleep(0.3)
    swept = storage.sweep_stale_trials(backend, grace_s=0.2)
    assert swept.get(healthy.name) == [silent.number]
    row = _rows(backend, poisoned)[0]
    assert (row["state"], row["value"], row["batch_size"]) == ("COMPLETE", 0.5, None)
    assert "batch_size=100000000000000000000" in row["error"]
    assert _runs(backend, poisoned) == 0


def test_the_study_lock_is_free_while_the_sampler_works(backend: storage.Backend) -> None:
    record = _make(backend, n_trials=2)
    held: list[bool] = []

    class Probe(optuna.samplers.RandomSampler):
        """Records, when Optuna hands it a new trial, whether the study lock is taken."""

        def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
            held.append(_lock_taken(backend, record.study_id))
            super().before_trial(study, trial)

    study = optuna.load_study(
        study_name=record.optuna_name, storage=backend.optuna_storage, sampler=Probe()
    )
    with storage._lock.study_lock(backend, record.study_id):
        assert _lock_taken(backend, record.study_id)  # the probe can see a held lock
    trial = storage.claim_trial(backend, study, worker="w:1")
    assert trial is not None
    assert held == [False]


def _lock_taken(backend: storage.Backend, study_id: int) -> bool:
    if backend.dialect == "postgresql":
        with backend.engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:ns, :sid)"),
                {"ns": _LOCK_NAMESPACE, "sid": study_id},
            ).scalar_one()
            if got:
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:ns, :sid)"),
                    {"ns": _LOCK_NAMESPACE, "sid": study_id},
                )
            return not got
    with open(_sqlite_lock_path(backend), "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def _worker_process(url: str, name: str) -> None:
    """One worker process: the real pull loop on the study until it is done."""
    run_worker(
        WorkerOptions(
            storage_url=url,
            study=name,
            device="cpu",
            idle_exit=20.0,
            poll_interval=0.1,
            # Several heartbeats per grace period even on a loaded machine:
            # a live trial failed as stale would be retried, not lost, but
            # would blur what this test checks.
            heartbeat_s=0.5,
            grace_s=8.0,
            install_signal_handlers=False,
            task_options={"n_train": 128, "n_val": 64},
        )
    )


@pytest.mark.serial  # kills a worker and waits for its heartbeat to go stale
def test_three_worker_processes_finish_the_budget_exactly_and_retry_a_dead_claim(
    backend: storage.Backend,
) -> None:
    record = _make(backend, n_trials=8, max_epochs=1)
    study = storage.load_optuna_study(backend, record)
    # A worker that claimed a trial and died: the processes must find it stale.
    dead = _claim(backend, study, worker="dead:3", sample=False)
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=_worker_process, args=(backend.url, record.name)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout=90)
        assert [p.exitcode for p in procs] == [0, 0, 0]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    trials = _assert_exact(backend, record)
    assert trials[dead.number].user_attrs["error"].startswith("stale")
    workers = {t.user_attrs.get("worker") for t in trials} - {"dead:3"}
    assert len(workers) >= 2, workers
    retry = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
    assert len(retry) == 1


def test_the_lifecycle_api_keeps_its_public_names() -> None:
    names = {
        "BudgetCounts",
        "budget_counts",
        "claim_trial",
        "enqueue_fixed",
        "fail_stale_trials",
        "finish_trial",
        "give_back",
        "grace_s_from_env",
        "heartbeat",
        "record_result",
        "sampler_slot",
        "sweep_stale_trials",
    }
    assert not names - set(storage.__all__)
    from lrsearch.storage import _trials  # the old home of these names still answers

    assert {n: getattr(_trials, n) for n in names} == {n: getattr(storage, n) for n in names}
