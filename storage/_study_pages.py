"""Progress of a whole page of studies at once, for the study list.

The list shows, for each study, its trials per state, how much of its budget
has finished, whether it is done, and its best value. Asking
:func:`storage.study_summary` per study would cost several queries per row;
here three queries answer for the whole page, whatever its length, each
restricted to the page's study ids; they read the studies' running totals
(storage._aggregates), not their trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage._aggregates import (
    best_of,
    budget_of,
    confirm_pending,
    confirmation_marked,
    read_totals,
    unfinished_counts,
)
from lrsearch.storage._budget import (
    CONFIRMATION_MARKER,
    CONFIRMATION_OF,
    FINISHED,
    STATE_TEXT,
    BudgetCounts,
    is_search_trial,
)
from lrsearch.storage._optuna_schema import study_user_attrs
from lrsearch.storage._results import (
    TRIAL_STATES,
    is_finite,
    optuna_trials,
    optuna_user_attrs,
)
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results


@dataclass(frozen=True)
class StudyProgress:
    """Where one study of a page stands (the same numbers as its full summary)."""

    counts: dict[str, int]
    """Trials per state; all five states, zeros included."""
    finished: int
    """Finished trials that count toward the budget (retried failures excluded)."""
    done: bool
    """Every trial of the budget has finished."""
    best_value: float | None
    """The best finite value of a COMPLETE trial, by the study's direction."""


def _confirms(record: StudyRecord) -> bool:
    spec = record.definition.confirm
    return spec is not None and spec.enabled


def study_progress(conn: Connection, records: Sequence[StudyRecord]) -> dict[int, StudyProgress]:
    """The progress of each study in ``records``, keyed by study id, in three queries.

    The same as :func:`study_progress_scan`, from the studies' aggregates
    (storage._aggregates), their RUNNING and WAITING trials (a partial index)
    and their confirmation markers: a few rows per study, whatever its size.

    Args:
        conn: A connection to the storage.
        records: The studies of one page (a few hundred at most).

    Returns:
        ``{study_id: StudyProgress}`` for every record.
    """
    ids = [r.study_id for r in records]
    totals = read_totals(conn, ids)
    unfinished = unfinished_counts(conn, ids)
    marked = confirmation_marked(conn, [r.study_id for r in records if _confirms(r)])
    progress = {}
    for record in records:
        sid = record.study_id
        budget = budget_of(
            record, totals[sid], unfinished[sid], confirm_pending=confirm_pending(record, marked)
        )
        search = [t for t in totals[sid] if not t.confirmation]
        best = best_of(search, record.direction)
        progress[sid] = StudyProgress(
            counts={**dict.fromkeys(TRIAL_STATES, 0), **budget.by_state},
            finished=budget.finished - budget.retried,
            done=budget.done,
            best_value=None if best is None else float(best[0]),
        )
    return progress


def study_progress_scan(
    conn: Connection, records: Sequence[StudyRecord]
) -> dict[int, StudyProgress]:
    """The progress of each study in ``records``, keyed by study id, in four queries.

    Reads every trial of the page's studies (what :func:`study_progress` must equal).

    Args:
        conn: A connection to the storage.
        records: The studies of one page (a few hundred at most).

    Returns:
        ``{study_id: StudyProgress}`` for every record.
    """
    ids = [r.study_id for r in records]
    if not ids:
        return {}
    by_state: dict[int, dict[str, int]] = {i: {} for i in ids}
    confirm: dict[int, dict[str, int]] = {i: {} for i in ids}
    study_id = optuna_trials.c.study_id
    # Confirmation trials are counted apart, as in storage._budget.
    conf = optuna_user_attrs.alias("conf")
    on_conf = sa.and_(conf.c.trial_id == optuna_trials.c.trial_id, conf.c.key == CONFIRMATION_OF)
    for sid, state, key, n in conn.execute(
        sa.select(study_id, STATE_TEXT, conf.c.key, sa.func.count())
        .select_from(optuna_trials.outerjoin(conf, on_conf))
        .where(study_id.in_(ids))
        .group_by(study_id, STATE_TEXT, conf.c.key)
    ):
        (by_state if key is None else confirm)[int(sid)][str(state)] = int(n)
    # Failures that a retry repeats do not count toward the budget (see storage._budget).
    retried: dict[int, int] = {}
    confirm_retried: dict[int, int] = {}
    retry = optuna_user_attrs.alias("retry")
    for sid, key, n in conn.execute(
        sa.select(study_id, conf.c.key, sa.func.count(sa.distinct(retry.c.value_json)))
        .select_from(
            retry.join(optuna_trials, optuna_trials.c.trial_id == retry.c.trial_id).outerjoin(
                conf, on_conf
            )
        )
        .where(study_id.in_(ids), retry.c.key == "retry_of")
        .group_by(study_id, conf.c.key)
    ):
        (retried if key is None else confirm_retried)[int(sid)] = int(n)
    marked = set(
        conn.execute(
            sa.select(study_user_attrs.c.study_id).where(
                study_user_attrs.c.study_id.in_(ids),
                study_user_attrs.c.key == CONFIRMATION_MARKER,
            )
        ).scalars()
    )
    tr = trial_results.c
    extremes = {
        int(sid): (hi, lo)
        for sid, hi, lo in conn.execute(
            sa.select(tr.study_id, sa.func.max(tr.value), sa.func.min(tr.value))
            .where(
                tr.study_id.in_(ids),
                tr.state == "COMPLETE",
                is_finite(tr.value),
                is_search_trial(tr.trial_id),
            )
            .group_by(tr.study_id)
        )
    }
    progress = {}
    for record in records:
        states = by_state[record.study_id]
        budget = BudgetCounts(
            n_trials=record.n_trials,
            total=sum(states.values()),
            retried=retried.get(record.study_id, 0),
            waiting=states.get("WAITING", 0),
            running=states.get("RUNNING", 0),
            finished=sum(states.get(s, 0) for s in FINISHED),
            by_state=states,
            confirm_by_state=confirm[record.study_id],
            confirm_retried=confirm_retried.get(record.study_id, 0),
            confirm_pending=_confirms(record) and record.study_id not in marked,
        )
        hi, lo = extremes.get(record.study_id, (None, None))
        best = hi if record.direction == "maximize" else lo
        progress[record.study_id] = StudyProgress(
            counts={**dict.fromkeys(TRIAL_STATES, 0), **states},
            finished=budget.finished - budget.retried,
            done=budget.done,
            best_value=None if best is None else float(best),
        )
    return progress
