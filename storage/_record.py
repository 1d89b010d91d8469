"""The summary row of a finished trial in ``lrsearch_trials``.

Crash consistency: the row is written under the study lock, after Optuna's
state change (which commits on Optuna's own engine), and deletes the trial's
run row in the same statement group. A process that dies in between leaves a
finished trial without a row (or with a run row left over); the stale sweep
backfills it with this same function, which is idempotent.

``retried`` is never passed in from a caller's intention: it is read from
Optuna's tables (does a trial carry ``retry_of`` = this number?). Retries are
created *before* the trial they repeat is failed (see
:mod:`lrsearch.storage._retry`), so when a FAIL row is written its retry, if
any, already exists, and the flag can never disagree with the retries.

A value that our columns cannot hold (an integer parameter beyond 32 bits, a
name longer than its column) is left out of its column, kept in ``params``
(JSON text), and named in ``error``: one bad trial must not make its row, and
hence every sweep of its study, fail forever.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any, TypeGuard

import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._aggregates import add_result, refresh_study
from lrsearch.storage._budget import CONFIRMATION_OF
from lrsearch.storage._clock import db_now
from lrsearch.storage._errors import InvalidInputError
from lrsearch.storage._tables import trial_results, trial_runs

_optuna_trials = _optuna.trials
_optuna_user_attrs = _optuna.trial_user_attrs

# PostgreSQL's INTEGER; SQLite would take more, but both backends must agree.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_INT_PARAMS = ("batch_size", "warmup_epochs")
_STR_PARAMS = {"schedule": 32, "weight_init": 32}
# Raised by a driver for a value its column cannot take (PostgreSQL: DataError;
# sqlite3: OverflowError at bind time, before SQLAlchemy sees the statement).
# (Our engine raises InvalidInputError for both: see storage._dberrors.)
_UNWRITABLE = (sa.exc.DataError, sa.exc.StatementError, OverflowError, InvalidInputError)


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fits_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and _INT_MIN <= value <= _INT_MAX


def unrecordable_params(params: dict[str, Any]) -> list[str]:
    """The parameters whose values our summary columns cannot hold, as ``name=value`` texts."""
    bad = [f"{k}={params[k]!r}" for k in _INT_PARAMS if k in params and not _fits_int(params[k])]
    bad += [
        f"{k}={str(params[k])[:40]!r}"
        for k, width in _STR_PARAMS.items()
        if k in params and not (isinstance(params[k], str) and len(params[k]) <= width)
    ]
    return bad


def is_retried(conn: Connection, study_id: int, number: int) -> bool:
    """Whether some trial of the study is a retry of trial ``number`` (Optuna's tables)."""
    found = conn.execute(
        sa.select(_optuna_user_attrs.c.trial_id)
        .join(_optuna_trials, _optuna_trials.c.trial_id == _optuna_user_attrs.c.trial_id)
        .where(
            _optuna_trials.c.study_id == study_id,
            _optuna_user_attrs.c.key == "retry_of",
            _optuna_user_attrs.c.value_json == json.dumps(number),
        )
        .limit(1)
    ).first()
    return found is not None


def study_id_of(conn: Connection, trial_id: int) -> int:
    return int(
        conn.execute(
            sa.select(_optuna_trials.c.study_id).where(_optuna_trials.c.trial_id == trial_id)
        ).scalar_one()
    )


def _clip(value: Any, width: int) -> str | None:
    return None if value is None else str(value)[:width]


def _summary(conn: Connection, frozen: FrozenTrial, runm: Any, study_id: int) -> dict[str, Any]:
    params = frozen.params
    bad = unrecordable_params(params)
    bad_names = {b.split("=", 1)[0] for b in bad}
    now = db_now(conn)
    started = runm.get("started_at")
    reported = frozen.user_attrs.get("epochs_run")
    epochs = reported if _fits_int(reported) else len(frozen.intermediate_values)
    error = frozen.user_attrs.get("error")
    if bad and not (error and "unrecordable" in str(error)):
        note = f"unrecordable: {', '.join(bad)} left out of the summary"
        error = f"{error}; {note}" if error else note
    attempt = frozen.user_attrs.get("attempt", 0)
    retry_of = frozen.user_attrs.get("retry_of")

    def param(name: str) -> Any:
        return None if name in bad_names else params.get(name)

    return {
        "trial_id": frozen._trial_id,
        "study_id": study_id,
        "number": frozen.number,
        "state": frozen.state.name,
        "value": _num(frozen.value) if frozen.values else None,
        "schedule": param("schedule"),
        "learning_rate": _num(param("learning_rate")),
        "batch_size": param("batch_size"),
        "dropout": _num(param("dropout")),
        "weight_init": param("weight_init"),
        "warmup_epochs": param("warmup_epochs") if "warmup_epochs" in params else 0,
        "epochs_run": epochs,
        "params": json.dumps(params, default=str),
        "error": None if error is None else str(error),
        "worker": _clip(frozen.user_attrs.get("worker", runm.get("worker")), 256),
        "device": _clip(frozen.user_attrs.get("device", runm.get("device")), 64),
        "started_at": started,
        "finished_at": now,
        "duration_s": (now - started) if started is not None else None,
        "attempt": attempt if _fits_int(attempt) else 0,
        "retry_of": retry_of if _fits_int(retry_of) else None,
        "retried": frozen.state == TrialState.FAIL and is_retried(conn, study_id, frozen.number),
    }


def savepoint(conn: Connection) -> contextlib.AbstractContextManager[object]:
    """A savepoint on PostgreSQL, so that a failed statement leaves the transaction usable.

    Nothing on SQLite: the study lock's connection autocommits each statement
    there, so a failed one has nothing to undo, and a savepoint would open a
    read transaction that cannot be upgraded once Optuna's connection writes.
    """
    if conn.dialect.name == "postgresql":
        return conn.begin_nested()
    return contextlib.nullcontext()


def _upsert(conn: Connection, row: dict[str, Any], *, confirmation: bool) -> None:
    """Write the row and its share of the study's aggregates (storage._aggregates)."""
    trial_id = row["trial_id"]
    exists = conn.execute(
        sa.select(trial_results.c.trial_id).where(trial_results.c.trial_id == trial_id)
    ).first()
    if exists is None:
        conn.execute(trial_results.insert().values(**row))
        add_result(conn, row, confirmation=confirmation)
    else:
        conn.execute(
            trial_results.update().where(trial_results.c.trial_id == trial_id).values(**row)
        )
        # Rare (a re-record): the old row's share is not known here, so recount.
        refresh_study(conn, row["study_id"])


@contextlib.contextmanager
def _one_transaction(conn: Connection) -> Iterator[None]:
    """The summary row, its aggregates and the run row's removal, all or nothing.

    PostgreSQL: the study lock's transaction already is one. SQLite: the lock's
    connection autocommits each statement, so a short ``BEGIN IMMEDIATE`` here;
    Optuna's connection is done writing this trial by now.
    """
    autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    if conn.dialect.name != "sqlite" or not autocommit:
        yield
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


def record_result(conn: Connection, frozen: FrozenTrial, *, retried: bool | None = None) -> None:
    """Write the summary row of a finished trial (idempotent) and drop its run row.

    Args:
        conn: A connection holding the study lock (two writers of the same row
            would otherwise race between the existence check and the insert).
        frozen: The finished trial as Optuna stores it.
        retried: Ignored, kept for callers of the old signature: whether a
            retry repeats the trial is read from Optuna's tables, where the
            retry is created before the trial is failed.
    """
    del retried
    run = conn.execute(
        sa.select(trial_runs).where(trial_runs.c.trial_id == frozen._trial_id)
    ).first()
    runm: Any = run._mapping if run is not None else {}
    study_id = int(runm["study_id"]) if runm else study_id_of(conn, frozen._trial_id)
    row = _summary(conn, frozen, runm, study_id)
    confirmation = CONFIRMATION_OF in frozen.user_attrs
    with _one_transaction(conn):
        _write(conn, row, frozen._trial_id, confirmation=confirmation)


def _write(conn: Connection, row: dict[str, Any], trial_id: int, *, confirmation: bool) -> None:
    try:
        # A savepoint, so that a failed write leaves the lock's transaction usable.
        with savepoint(conn):
            _upsert(conn, row, confirmation=confirmation)
    except _UNWRITABLE as exc:
        # Something the checks above did not foresee: keep the row's skeleton
        # (state, value, number count for the results) and say what was lost.
        keep = ("trial_id", "study_id", "number", "state", "value", "epochs_run", "finished_at")
        skeleton = {k: row[k] for k in keep}
        reason = f"unrecordable: {type(exc).__name__} writing the summary; details left out"
        skeleton.update(
            params="{}",
            attempt=row["attempt"],
            retried=row["retried"],
            error=f"{row['error']}; {reason}" if row["error"] else reason,
        )
        with savepoint(conn):
            _upsert(conn, skeleton, confirmation=confirmation)
    conn.execute(trial_runs.delete().where(trial_runs.c.trial_id == trial_id))
