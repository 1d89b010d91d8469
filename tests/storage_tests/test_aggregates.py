"""The running totals of storage._aggregates against full scans, on SQLite and PostgreSQL.

Every summary the dashboard reads from the totals (study page, study list,
schedules leaderboard, best trial) must equal the same summary computed from
every trial; the totals kept trial by trial must equal a recount from the
summary rows and revision 0003's backfill; and concurrent writers lose no
update.
"""

from __future__ import annotations

import importlib
import threading
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import sample_config
from lrsearch.storage import Backend
from lrsearch.storage._aggregates import add_result, read_totals, refresh_study, scan_totals
from lrsearch.storage._confirm import enqueue_confirmations
from lrsearch.storage._lock import study_lock
from lrsearch.storage._study_pages import study_progress_scan
from lrsearch.storage._summary_scan import (
    best_per_schedule_scan,
    best_trial_scan,
    study_summary_scan,
)
from lrsearch.storage._tables import study_aggregates
from tests.conftest import postgres_url_or_skip
from tests.storage_tests.conftest import MAIN_STEPS
from tests.storage_tests.helpers import Played, budget_of, definition, play
from tests.storage_tests.migration_helpers import fresh_database

_migration = importlib.import_module("lrsearch.storage._migrations.versions.0003_study_aggregates")


def _confirmed_study(backend: Backend) -> Played:
    """A minimize study whose search is done and whose confirmations ran (one failed)."""
    defn = definition(
        objective={"metric": "val_loss"},
        budget={"n_trials": 5, "max_epochs": 3, "max_retries": 0},
        confirm={"top_k": 1, "seeds": 2},
        search_space={"schedules": ["step", "cosine"]},
    )
    record = storage.create_study(backend, defn)
    study = storage.load_optuna_study(backend, record)
    for value in (0.5, 0.3, 0.3, 0.7, 0.2):
        trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert trial is not None
        sample_config(trial, defn)
        trial.report(value + 0.1, 0)
        trial.report(value, 1)
        storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=value)
    with study_lock(backend, record.study_id) as conn:
        enqueue_confirmations(backend, study, record, conn)
    for state, value in ((TrialState.COMPLETE, 0.25), (TrialState.FAIL, None)):
        trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert trial is not None
        sample_config(trial, defn)
        trial.report(0.4, 0)
        storage.finish_trial(backend, study, trial, state=state, value=value)
    return Played(record=record, study=study)


@pytest.fixture(scope="module")
def confirmed_study(backend: Backend) -> Played:
    return _confirmed_study(backend)


@pytest.mark.parametrize("study", ["main_study", "min_study", "confirmed_study"])
def test_summaries_from_the_totals_equal_full_scans(
    backend: Backend, study: str, request: pytest.FixtureRequest
) -> None:
    played: Played = request.getfixturevalue(study)
    record = played.record
    with backend.engine.connect() as conn:
        assert storage.study_summary(conn, record) == study_summary_scan(conn, record)
        assert storage.best_trial(conn, record) == best_trial_scan(conn, record)
        assert storage.best_per_schedule(conn, record) == best_per_schedule_scan(conn, record)
        assert storage.study_progress(conn, [record]) == study_progress_scan(conn, [record])
        # The totals kept trial by trial equal a recount of the summary rows.
        assert read_totals(conn, [record.study_id])[record.study_id] == scan_totals(
            conn, record.study_id
        )


def test_the_studies_have_what_the_comparison_needs(
    backend: Backend, main_study: Played, confirmed_study: Played
) -> None:
    with backend.engine.connect() as conn:
        main = study_summary_scan(conn, main_study.record)
        confirmed = study_summary_scan(conn, confirmed_study.record)
        totals = read_totals(conn, [confirmed_study.record.study_id])
    assert all(main.counts[s] > 0 for s in main.counts), main.counts
    assert confirmed.confirmations["COMPLETE"] == 1
    assert confirmed.confirmations["FAIL"] == 1
    # Confirmations never rank: the best is a search trial.
    assert confirmed.best is not None
    assert confirmed.best.value == 0.2
    assert any(t.confirmation for t in totals[confirmed_study.record.study_id])


def test_a_re_recorded_trial_is_recounted(backend: Backend) -> None:
    steps = MAIN_STEPS[:12]
    played = play(backend, definition(budget={"n_trials": budget_of(steps)}), steps)
    sid = played.record.study_id
    frozen = played.study.get_trials(deepcopy=False)[0]
    with backend.engine.begin() as conn:
        before = read_totals(conn, [sid])[sid]
        storage.record_result(conn, frozen)  # idempotent: the same row again
        assert read_totals(conn, [sid])[sid] == before == scan_totals(conn, sid)


def _backfilled(conn: sa.Connection) -> None:
    conn.execute(study_aggregates.delete())
    conn.exec_driver_sql(_migration._BACKFILL)
    for column in ("max", "min"):
        conn.exec_driver_sql(
            _migration._BEST_NUMBER.format(column=column, confirmation=_migration._CONFIRMATION)
        )


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_migration_backfills_the_same_totals(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        backend = storage.open_backend(url)
        try:
            n = budget_of(MAIN_STEPS)
            played = [
                play(backend, definition(budget={"n_trials": n, "max_retries": 1}), MAIN_STEPS),
                _confirmed_study(backend),
            ]
            ids = [p.record.study_id for p in played]
            with backend.engine.begin() as conn:
                kept = read_totals(conn, ids)
                _backfilled(conn)
                assert read_totals(conn, ids) == kept
                assert all(kept[i] for i in ids)
        finally:
            backend.dispose()


def test_threads_finishing_trials_at_once_give_exact_counts(backend: Backend) -> None:
    """Eight workers finish 40 trials at once through the real path."""
    n = 40
    defn = definition(budget={"n_trials": n, "max_epochs": 3}, search_space={"schedules": ["step"]})
    record = storage.create_study(backend, defn)
    study = storage.load_optuna_study(backend, record)
    trials: list[optuna.Trial] = []
    for _ in range(n):
        trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert trial is not None
        sample_config(trial, defn)
        trial.report(0.5, 0)
        trials.append(trial)
    errors: list[BaseException] = []

    def finish(mine: list[optuna.Trial]) -> None:
        try:
            for i, trial in enumerate(mine):
                state = TrialState.COMPLETE if i % 2 == 0 else TrialState.PRUNED
                value = 0.5 + trial.number / 1000 if state == TrialState.COMPLETE else None
                storage.finish_trial(backend, study, trial, state=state, value=value)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(trials[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with backend.engine.connect() as conn:
        summary = storage.study_summary(conn, record)
        assert summary == study_summary_scan(conn, record)
    assert summary.counts["COMPLETE"] + summary.counts["PRUNED"] == n
    assert summary.best is not None
    assert summary.best.number == max(
        t.number for k in range(8) for i, t in enumerate(trials[k::8]) if i % 2 == 0
    )


@pytest.mark.postgres
def test_concurrent_increments_without_the_study_lock_lose_no_update() -> None:
    """The SQL itself is safe: 8 connections add 400 rows to one group at once."""
    backend = storage.open_backend(postgres_url_or_skip(), pool_size=8)
    sid = 2_000_000_000 + uuid.uuid4().int % 100_000_000  # no Optuna study has such an id
    per_thread = 50
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def add(k: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                number = k * per_thread + i
                with backend.engine.begin() as conn:
                    add_result(
                        conn,
                        {
                            "study_id": sid,
                            "number": number,
                            "state": ("COMPLETE", "PRUNED", "FAIL")[number % 3],
                            "value": float(number),
                            "schedule": "step",
                            "epochs_run": 2,
                            "retried": number % 6 == 2,
                        },
                        confirmation=False,
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(k,)) for k in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with backend.engine.connect() as conn:
            (totals,) = read_totals(conn, [sid])[sid]
        numbers = range(8 * per_thread)
        assert totals.n_complete == sum(1 for x in numbers if x % 3 == 0)
        assert totals.n_pruned == sum(1 for x in numbers if x % 3 == 1)
        assert totals.n_fail == sum(1 for x in numbers if x % 3 == 2)
        assert totals.n_retried == sum(1 for x in numbers if x % 6 == 2)
        assert totals.epochs_run == 2 * len(numbers)
        complete = [x for x in numbers if x % 3 == 0]
        assert (totals.max_value, totals.max_number) == (float(max(complete)), max(complete))
        assert (totals.min_value, totals.min_number) == (0.0, 0)
    finally:
        with backend.engine.begin() as conn:
            conn.execute(study_aggregates.delete().where(study_aggregates.c.study_id == sid))
        backend.dispose()


def test_refresh_rebuilds_what_was_lost(backend: Backend, min_study: Played) -> None:
    sid = min_study.record.study_id
    with backend.engine.begin() as conn:
        kept = read_totals(conn, [sid])[sid]
        conn.execute(study_aggregates.delete().where(study_aggregates.c.study_id == sid))
        assert read_totals(conn, [sid])[sid] == []
        refresh_study(conn, sid)
        assert read_totals(conn, [sid])[sid] == kept
