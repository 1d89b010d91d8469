"""The stale sweep: trials nobody runs any more are failed and retried; lost rows are backfilled.

Crash consistency. Every change of a trial's state (claim, finish, give back,
stale) happens under the study lock, and each one that ends a trial deletes
its row in ``lrsearch_trial_runs`` in the same locked transaction. Hence, for
anyone holding the lock:

- a RUNNING trial with a run row belongs to a worker that claimed it; its
  ``heartbeat_at`` (database clock) says whether that worker is alive;
- a RUNNING trial without a run row was asked from Optuna by a claim that died
  before committing (killed process, lost connection): nobody runs it;
- a finished trial without a summary row, or with a run row left over, was
  ended by a process that died between Optuna's commit and ours.

:func:`fail_stale_trials` repairs all three; the last by backfilling. Each
trial is repaired on its own savepoint: one trial that cannot be repaired is
logged and left for the next sweep, and never blocks the others, nor (in
:func:`sweep_stale_trials`) the other studies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._budget import FINISHED, STATE_TEXT
from lrsearch.storage._clock import now_expr
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import StorageUnavailableError
from lrsearch.storage._lock import study_lock
from lrsearch.storage._record import record_result, savepoint
from lrsearch.storage._retry import fail_and_retry
from lrsearch.storage._settings import CommonSettings
from lrsearch.storage._studies import StudyRecord, get_study, list_studies
from lrsearch.storage._tables import trial_results, trial_runs

log = logging.getLogger("lrsearch.storage._trials")

_optuna_trials = _optuna.trials
# "The database is not there": not a problem of one trial; the caller waits it out.
# (The engines raise StorageUnavailableError for these: see storage._dberrors.)
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, StorageUnavailableError)


def _stale_trials(
    conn: Connection, backend: Backend, study_id: int, grace_s: float, heartbeats_valid: bool
) -> list[tuple[int, int, str]]:
    """RUNNING trials nobody runs: ``(trial_id, number, why)``, oldest first."""
    now = now_expr(backend.dialect)
    found: list[tuple[int, int, str]] = []
    if heartbeats_valid:
        silent = conn.execute(
            sa.select(trial_runs.c.trial_id, trial_runs.c.number)
            .join(_optuna_trials, _optuna_trials.c.trial_id == trial_runs.c.trial_id)
            .where(
                trial_runs.c.study_id == study_id,
                STATE_TEXT == "RUNNING",
                trial_runs.c.heartbeat_at < now - grace_s,
            )
        ).all()
        found += [(int(t), int(n), f"stale: no heartbeat for {grace_s:g} s") for t, n in silent]
    orphans = conn.execute(
        sa.select(_optuna_trials.c.trial_id, _optuna_trials.c.number)
        .outerjoin(trial_runs, trial_runs.c.trial_id == _optuna_trials.c.trial_id)
        .where(
            _optuna_trials.c.study_id == study_id,
            STATE_TEXT == "RUNNING",
            trial_runs.c.trial_id.is_(None),
        )
    ).all()
    found += [(int(t), int(n), "stale: its claim never completed") for t, n in orphans]
    return sorted(found, key=lambda item: item[1])


def _unrecorded_trials(conn: Connection, study_id: int) -> list[int]:
    """Finished trials whose summary row is missing or whose run row is left over."""
    no_summary = (
        sa.select(_optuna_trials.c.trial_id)
        .outerjoin(trial_results, trial_results.c.trial_id == _optuna_trials.c.trial_id)
        .where(
            _optuna_trials.c.study_id == study_id,
            STATE_TEXT.in_(FINISHED),
            trial_results.c.trial_id.is_(None),
        )
    )
    leftover_run = (
        sa.select(_optuna_trials.c.trial_id)
        .join(trial_runs, trial_runs.c.trial_id == _optuna_trials.c.trial_id)
        .where(_optuna_trials.c.study_id == study_id, STATE_TEXT.in_(FINISHED))
    )
    return sorted({int(t) for t in conn.execute(sa.union(no_summary, leftover_run)).scalars()})


def fail_stale_trials(
    backend: Backend, study: optuna.Study, record: StudyRecord, *, grace_s: float
) -> list[int]:
    """Fail every running trial whose worker is gone, and retry it; repair summary rows.

    A trial is stale when its heartbeat (database clock) is older than
    ``grace_s``, or when it is RUNNING in Optuna without a run row (its claim
    died halfway). Also backfills the summary rows of trials that finished in
    Optuna but whose worker died before writing the row.

    The check runs first without the lock (two cheap queries, the usual answer
    being "nothing"), then again under the lock before anything is changed, so
    a heartbeat that arrives in between saves its trial.

    Returns:
        The numbers of the trials failed.
    """
    return _sweep(backend, record, grace_s, lambda: study)


def _repair(conn: Connection, what: str, repair: Callable[[], object]) -> object:
    """Run one trial's repair on a savepoint; log and skip it if it raises (but not outages)."""
    try:
        with savepoint(conn):
            return repair()
    except _UNAVAILABLE:
        raise
    except Exception as exc:
        log.error("could not repair %s: %s: %s", what, type(exc).__name__, exc)
        return None


def _sweep(
    backend: Backend,
    record: StudyRecord,
    grace_s: float,
    study_handle: Callable[[], optuna.Study],
) -> list[int]:
    with backend.engine.connect() as conn:
        heartbeats_valid = _heartbeats_valid(conn, backend, grace_s)
        suspects = _stale_trials(conn, backend, record.study_id, grace_s, heartbeats_valid)
        unrecorded = _unrecorded_trials(conn, record.study_id)
    failed: list[int] = []
    if not suspects and not unrecorded:
        return failed
    with study_lock(backend, record.study_id) as conn:
        for trial_id, number, reason in _stale_trials(
            conn, backend, record.study_id, grace_s, heartbeats_valid
        ):
            fail = functools.partial(
                fail_and_retry, backend, conn, study_handle(), trial_id, reason, record.max_retries
            )
            if _repair(conn, f"stale trial {number} of {record.name}", fail):
                failed.append(number)
        for trial_id in _unrecorded_trials(conn, record.study_id):
            backfill = functools.partial(_backfill, backend, conn, trial_id)
            _repair(conn, f"the summary row of trial id {trial_id} of {record.name}", backfill)
    return failed


def _backfill(backend: Backend, conn: Connection, trial_id: int) -> None:
    record_result(conn, backend.optuna_storage.get_trial(trial_id))


def _heartbeats_valid(conn: Connection, backend: Backend, grace_s: float) -> bool:
    """False while a PostgreSQL server is younger than the grace period.

    A server that was down for a while comes back with every heartbeat older
    than the grace period, although the workers are alive and heartbeat again
    within one interval. Judging staleness before they had a grace period to
    do so would retry every trial in flight.
    """
    if backend.dialect != "postgresql":
        return True
    uptime = conn.execute(
        sa.text("SELECT extract(epoch FROM clock_timestamp() - pg_postmaster_start_time())")
    ).scalar_one()
    return float(uptime) >= grace_s


def grace_s_from_env() -> float:
    """``LRSEARCH_GRACE_S`` (seconds without heartbeat before a trial is stale), default 60."""
    return CommonSettings().grace_s


def sweep_stale_trials(
    backend: Backend, *, grace_s: float | None = None, study: str | None = None
) -> dict[str, list[int]]:
    """Fail and retry the stale trials of every running or paused study (or of one).

    For the service or a cron job: workers sweep the studies they work on, but
    when every worker of a study is gone, nobody else would. Cheap when nothing
    is stale: two small queries per study, no lock. A study whose sweep raises
    is logged and skipped; the others are swept all the same.

    Args:
        backend: The shared storage.
        grace_s: Seconds without heartbeat before a trial is stale; default
            ``LRSEARCH_GRACE_S`` (60).
        study: Only this study.

    Returns:
        Per study name, the numbers of the trials failed (studies with none are left out).

    Raises:
        StudyNotFoundError: ``study`` does not exist.
    """
    grace = grace_s_from_env() if grace_s is None else grace_s
    if study is not None:
        records = [get_study(backend, study)]
    else:
        records = list_studies(backend, states=("running", "paused"))
    swept: dict[str, list[int]] = {}
    for record in records:
        handle = functools.cache(functools.partial(_handle, backend, record))
        try:
            failed = _sweep(backend, record, grace, handle)
        except _UNAVAILABLE:
            raise
        except Exception as exc:
            log.error(
                "stale sweep of study %s failed: %s: %s", record.name, type(exc).__name__, exc
            )
            continue
        if failed:
            swept[record.name] = failed
    return swept


def _handle(backend: Backend, record: StudyRecord) -> optuna.Study:
    # Enqueueing a retry needs a Study; its sampler is irrelevant (and the
    # service must not build samplers that may need torch).
    return optuna.load_study(
        study_name=record.optuna_name or record.name,
        storage=backend.optuna_storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=optuna.pruners.NopPruner(),
    )
