"""Study summary, best trial, best schedules and state counts, all in SQL.

Every query is an aggregate, a ``GROUP BY`` or an indexed ``ORDER BY ... LIMIT``
over our summary table ``lrsearch_trials`` (one row per finished trial) and
Optuna's ``trials`` table; none loads a study's trials into Python. The same
SQL runs on SQLite and PostgreSQL; only the median differs (``percentile_cont``
on PostgreSQL, a ``row_number`` window on SQLite).
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
    best_key,
    is_finite,
    optuna_intermediate,
    optuna_trials,
    row_from_mapping,
    state_text,
)
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import studies, trial_results, trial_runs


def _complete_with_value(record: StudyRecord) -> Any:
    # Search trials only: a confirmation is a re-run of a winner, not a candidate
    # (see lrsearch.storage._confirm for how the leaderboard uses them).
    return sa.and_(
        trial_results.c.study_id == record.study_id,
        trial_results.c.state == "COMPLETE",
        is_finite(trial_results.c.value),
        is_search_trial(trial_results.c.trial_id),
    )


def best_trial(conn: Connection, record: StudyRecord) -> TrialRow | None:
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


def _state_counts(conn: Connection) -> dict[str, int]:
    state = state_text(optuna_trials.c.state)
    query = sa.select(state, sa.func.count()).select_from(optuna_trials).group_by(state)
    counts = dict.fromkeys(TRIAL_STATES, 0)
    for name, n in conn.execute(query):
        counts[str(name)] = counts.get(str(name), 0) + int(n)
    return counts


def trial_counts_by_state(conn: Connection) -> dict[str, int]:
    """Trials per state over every study, for monitoring.

    Args:
        conn: A connection to the storage.

    Returns:
        ``{state: count}`` for RUNNING, WAITING, COMPLETE, PRUNED and FAIL, zeros included.
    """
    return _state_counts(conn)


def study_counts_by_state(conn: Connection) -> dict[str, int]:
    """Studies per control state over every tenant, for monitoring.

    One ``GROUP BY`` over ``lrsearch_studies`` (one row per study): cheap
    whatever the number of trials.

    Args:
        conn: A connection to the storage.

    Returns:
        ``{state: count}`` for the states that have studies.
    """
    query = sa.select(studies.c.state, sa.func.count()).group_by(studies.c.state)
    return {str(state): int(n) for state, n in conn.execute(query)}


def study_summary(conn: Connection, record: StudyRecord) -> StudySummary:
    """Counts per state, finished trials, best trial and epochs spent/saved.

    A handful of small queries whatever the study's size:
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
    running_epochs = conn.execute(
        sa.select(sa.func.count())
        .select_from(trial_runs)
        .join(optuna_intermediate, optuna_intermediate.c.trial_id == trial_runs.c.trial_id)
        .where(trial_runs.c.study_id == record.study_id)
    ).scalar_one()
    return StudySummary(
        counts=counts,
        finished=budget.finished - budget.retried,
        best=best_trial(conn, record),
        epochs_spent=int(spent) + int(running_epochs),
        epochs_saved=max(0, int(saved)),
        done=budget.done,
        confirmations={**dict.fromkeys(TRIAL_STATES, 0), **budget.confirm_by_state},
    )


def _top_per_schedule(conn: Connection, record: StudyRecord, k: int) -> dict[str, list[TrialRow]]:
    schedules = list(record.definition.search_space.schedules)
    result: dict[str, list[TrialRow]] = {s: [] for s in schedules}
    if k < 1 or not schedules:
        return result
    order = (best_first(trial_results.c.value, record.direction), trial_results.c.number)
    # One indexed LIMIT-k lookup per schedule, glued with UNION ALL into one
    # round trip (each part is wrapped in a subquery: SQLite wants it so).
    parts = [
        sa.select(*ROW_COLUMNS)
        .where(_complete_with_value(record), trial_results.c.schedule == schedule)
        .order_by(*order)
        .limit(k)
        .subquery()
        for schedule in schedules
    ]
    for row in conn.execute(sa.union_all(*(sa.select(p) for p in parts))):
        trial = row_from_mapping(row._mapping)
        if trial.schedule in result:
            result[trial.schedule].append(trial)
    key = best_key(record.direction)
    return {s: sorted(rows, key=key) for s, rows in result.items()}


def top_trials_per_schedule(
    conn: Connection, record: StudyRecord, *, k: int = 3
) -> dict[str, list[TrialRow]]:
    """The ``k`` best COMPLETE trials of each schedule of the definition, best first.

    One round trip: a ``UNION ALL`` of indexed ``LIMIT k`` lookups, one per schedule.

    Args:
        conn: A connection to the storage.
        record: The study.
        k: How many trials per schedule.

    Returns:
        Every schedule of ``record.definition.search_space.schedules`` as a key
        (in definition order), each with up to ``k`` trials, best first; an
        empty list for a schedule without a complete trial.
    """
    return _top_per_schedule(conn, record, k)


def _medians(conn: Connection, record: StudyRecord) -> dict[str, float]:
    tr = trial_results.c
    where = sa.and_(
        tr.study_id == record.study_id,
        tr.state.in_(("COMPLETE", "PRUNED")),
        is_finite(tr.value),
        is_search_trial(tr.trial_id),
    )
    if conn.dialect.name == "postgresql":
        median = sa.func.percentile_cont(0.5).within_group(tr.value)
        query = sa.select(tr.schedule, median).where(where).group_by(tr.schedule)
    else:
        # Portable median: the middle row (odd count) or the mean of the two middle rows.
        ranked = (
            sa.select(
                tr.schedule,
                tr.value,
                sa.func.row_number()
                .over(partition_by=tr.schedule, order_by=(tr.value, tr.number))
                .label("rn"),
                sa.func.count().over(partition_by=tr.schedule).label("cnt"),
            )
            .where(where)
            .subquery()
        )
        rn, cnt = ranked.c.rn, ranked.c.cnt
        middle = sa.or_(rn == (cnt + 1) // 2, rn == (cnt + 2) // 2)
        query = (
            sa.select(ranked.c.schedule, sa.func.avg(ranked.c.value))
            .where(middle)
            .group_by(ranked.c.schedule)
        )
    return {str(s): float(v) for s, v in conn.execute(query) if s is not None and v is not None}


def best_per_schedule(conn: Connection, record: StudyRecord) -> list[ScheduleStats]:
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
    stats = [
        ScheduleStats(
            schedule=schedule,
            best=best[schedule][0] if best[schedule] else None,
            n_complete=counts.get(schedule, (0, 0, 0))[0],
            n_pruned=counts.get(schedule, (0, 0, 0))[1],
            n_failed=counts.get(schedule, (0, 0, 0))[2],
            median_value=medians.get(schedule),
        )
        for schedule in best
    ]
    row_key = best_key(record.direction)
    with_best = [(s, s.best) for s in stats if s.best is not None]
    # Schedules with a best trial first, best of all first; the rest keep definition order.
    ranked = [s for s, _ in sorted(with_best, key=lambda pair: row_key(pair[1]))]
    return ranked + [s for s in stats if s.best is None]
