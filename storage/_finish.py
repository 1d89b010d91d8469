"""Ending a trial with its outcome: tell Optuna, write the summary row, judge the study.

Crash consistency. All under the study lock:

1. the final user attrs and Optuna's ``tell`` (committed on Optuna's engine);
2. the summary row, deleting the run row (our engine, the lock's transaction);
3. if the trial failed, the failure streak: after ``max_consecutive_failures``
   failures of one error class in a row, the study is marked ``failed``.

A process that dies after 1 leaves a finished trial with its run row: a retried
``finish_trial`` recognises its own committed outcome by that run row, and the
sweep backfills the summary otherwise. The streak is judged again on the next
failure, so a crash after 2 delays the verdict by at most one trial. A study
resumed without fixing the cause fails again at its next such failure (the
streak is read from the rows, which a resume leaves as they are); one trial
that succeeds or fails otherwise ends the streak.

Someone else ended the trial first (a sweep that found it stale, a give-back)
when its run row is gone: then nothing of this outcome is recorded, because
the trial has been retried and counting it too would break the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

from lrsearch.storage._budget import failure_streak
from lrsearch.storage._engine import Backend
from lrsearch.storage._lock import study_lock
from lrsearch.storage._record import record_result, unrecordable_params
from lrsearch.storage._studies import mark_study_failed, read_study_by_id
from lrsearch.storage._tables import trial_runs

log = logging.getLogger("lrsearch.storage._trials")


def _has_run_row(conn: Connection, trial_id: int) -> bool:
    return (
        conn.execute(
            sa.select(trial_runs.c.trial_id).where(trial_runs.c.trial_id == trial_id)
        ).first()
        is not None
    )


def _judge_streak(conn: Connection, study_id: int) -> None:
    """Mark the study failed once its newest failures share one error class, enough times."""
    record = read_study_by_id(study_id, conn=conn)
    limit = record.definition.budget.max_consecutive_failures
    if limit <= 0 or record.state != "running":
        return
    streak, cls = failure_streak(conn, study_id, limit)
    if streak >= limit:
        reason = (
            f"{streak} trials in a row failed with {cls}; no more trials are handed out "
            f"(fix the cause, then resume the study)"
        )
        if mark_study_failed(conn, study_id, reason):
            log.error("study %s failed: %s", record.name, reason)


def finish_trial(
    backend: Backend,
    study: optuna.Study,
    trial: optuna.Trial,
    *,
    state: TrialState,
    value: float | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> FrozenTrial | None:
    """Set final user attrs, tell Optuna, and write the summary row, under the study lock.

    Safe to call again after a database error: a tell that was committed but
    not acknowledged is recognised by the run row that is still there.

    A trial whose parameters our summary row cannot hold (an integer beyond 32
    bits, say, from a definition that was never bounded) ends FAIL with the
    reason, whatever its outcome: its result could not be shown or ranked.

    Returns:
        The finished trial, or ``None`` when someone else had already ended it
        (failed as stale, given back): then nothing of this outcome is recorded.
    """
    attrs = dict(user_attrs or {})
    bad = unrecordable_params(dict(trial.params))
    if bad and state != TrialState.FAIL:
        state = TrialState.FAIL
        attrs["error"] = f"unrecordable: {', '.join(bad)} cannot be stored in the results"
    values = None if value is None or state != TrialState.COMPLETE else value
    optuna_storage = backend.optuna_storage
    with study_lock(backend, study._study_id) as conn:
        try:
            for key, val in attrs.items():
                trial.set_user_attr(key, val)
            study.tell(trial, values, state=state, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # ended meanwhile: by us (unacknowledged commit) or by a sweep; see below
        frozen = optuna_storage.get_trial(trial._trial_id)
        if _has_run_row(conn, trial._trial_id):
            # Nobody else ended it (they would have deleted the run row with the
            # lock held), so this state is ours, or a crashed sweep's; record it.
            record_result(conn, frozen)
            if frozen.state == TrialState.FAIL:
                _judge_streak(conn, study._study_id)
        ours = frozen.state == state and frozen.user_attrs.get("error") == attrs.get("error")
        return frozen if ours else None
