"""The study summaries computed from every trial of a study, for comparison.

What :mod:`lrsearch.storage._summary` answered before the running totals of
:mod:`lrsearch.storage._aggregates`: its answers must always equal these
(``tests/storage_tests/test_aggregates.py``), and ``bench/dashboard_http.py``
serves these to measure the difference. Each reads all of the study's
summary rows or Optuna trials; the service does not call them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage._budget import budget_counts, is_search_trial
from lrsearch.storage._results import (
    ROW_COLUMNS,
    TRIAL_STATES,
    ScheduleStats,
    StudySummary,
    TrialRow,
    best_first,
    row_from_mapping,
)
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._summary import (
    _complete_with_value,
    _medians,
    _ranked,
    _running_epochs,
    _top_per_schedule,
)
from lrsearch.storage._tables import trial_results


def best_trial_scan(conn: Connection, record: StudyRecord) -> TrialRow | None:
    """The study's best COMPLETE trial with a finite value (ties: lowest number).

    One indexed ``ORDER BY ... LIMIT 1`` lookup on ``lrsearch_trials``.

    Args:
        conn: A connection to the storage.
        record: The study; ``record.direction`` says which way is better.

    Returns:
        The best trial, or ``None`` while no trial has completed with a finite value.
    """
    query = (
        sa.select(*ROW_COLUMNS)
        .where(_complete_with_value(record))
        .order_by(best_first(trial_results.c.value, record.direction), trial_results.c.number)
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else row_from_mapping(row._mapping)


def study_summary_scan(conn: Connection, record: StudyRecord) -> StudySummary:
    """Counts per state, finished trials, best trial and epochs spent/saved.

    Reads every trial of the study (what :func:`study_summary` must equal):
    :func:`storage.budget_counts` (a ``GROUP BY state`` over Optuna's
    ``trials``, the source of truth for states, and the budget rule behind
    ``finished`` and ``done``), one aggregate over
    ``lrsearch_trials``, the best-trial lookup, and the epochs reported so far
    by running trials.

    ``finished`` counts COMPLETE + PRUNED + FAIL trials except failures that a
    retry repeats. ``epochs_spent`` counts every epoch trained, retried
    failures and running trials included; ``epochs_saved`` is the sum over
    PRUNED trials of ``max_epochs - epochs_run``.

    Args:
        conn: A connection to the storage.
        record: The study.

    Returns:
        The summary; ``counts`` has all five states, zeros included.
    """
    # budget_counts already groups the study's trials by state: reuse it.
    budget = budget_counts(conn, record)
    counts = {**dict.fromkeys(TRIAL_STATES, 0), **budget.by_state}
    tr = trial_results.c
    pruned = tr.state == "PRUNED"
    spent, saved = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(tr.epochs_run), 0),
            sa.func.coalesce(
                sa.func.sum(sa.case((pruned, record.max_epochs - tr.epochs_run), else_=0)), 0
            ),
        ).where(tr.study_id == record.study_id)
    ).one()
    return StudySummary(
        counts=counts,
        finished=budget.finished - budget.retried,
        best=best_trial_scan(conn, record),
        epochs_spent=int(spent) + _running_epochs(conn, record),
        epochs_saved=max(0, int(saved)),
        done=budget.done,
        confirmations={**dict.fromkeys(TRIAL_STATES, 0), **budget.confirm_by_state},
    )


def best_per_schedule_scan(conn: Connection, record: StudyRecord) -> list[ScheduleStats]:
    """Best trial, counts and median final value for each schedule of the definition.

    Ordered best value first (by the study's direction; ties by trial number),
    schedules without a complete trial last in definition order. ``n_failed``
    counts FAIL trials that no retry repeats, so the three counts add up to the
    finished trials that count toward the budget. ``median_value`` is the
    median of the final values of COMPLETE and PRUNED trials (a pruned trial's
    final value is its last reported value).

    Three queries whatever the study's size: counts per schedule, medians per
    schedule, and one ``UNION ALL`` of indexed ``LIMIT 1`` lookups.

    Args:
        conn: A connection to the storage.
        record: The study.

    Returns:
        One entry per schedule of ``record.definition.search_space.schedules``.
    """
    tr = trial_results.c

    def count_if(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    count_rows = conn.execute(
        sa.select(
            tr.schedule,
            count_if(tr.state == "COMPLETE"),
            count_if(tr.state == "PRUNED"),
            count_if(sa.and_(tr.state == "FAIL", tr.retried.is_(False))),
        )
        .where(tr.study_id == record.study_id, is_search_trial(tr.trial_id))
        .group_by(tr.schedule)
    ).all()
    counts = {str(s): (int(c), int(p), int(f)) for s, c, p, f in count_rows if s is not None}
    medians = _medians(conn, record)
    best = _top_per_schedule(conn, record, 1)
    return _ranked(record, counts, medians, {s: rows[0] for s, rows in best.items() if rows})
