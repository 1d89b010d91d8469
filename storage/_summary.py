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

from lrsearch.storage._aggregates import (
    best_of,
    budget_of,
    confirm_pending,
    confirmation_marked,
    read_totals,
    unfinished_counts,
)
from lrsearch.storage._budget import is_search_trial
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


def _row_by_number(conn: Connection, record: StudyRecord, numbers: list[int]) -> list[TrialRow]:
    tr = trial_results.c
    query = sa.select(*ROW_COLUMNS).where(tr.study_id == record.study_id, tr.number.in_(numbers))
    return [row_from_mapping(r._mapping) for r in conn.execute(query)]


def best_trial(conn: Connection, record: StudyRecord) -> TrialRow | None:
    """The study's best COMPLETE trial with a finite value (ties: lowest number).

    Its number from the study's aggregates (storage._aggregates), then one
    indexed lookup of its row; :func:`storage._summary_scan.best_trial_scan` finds the same trial
    in ``lrsearch_trials`` itself.

    Args:
        conn: A connection to the storage.
        record: The study; ``record.direction`` says which way is better.

    Returns:
        The best trial, or ``None`` while no trial has completed with a finite value.
    """
    totals = [
        t for t in read_totals(conn, [record.study_id])[record.study_id] if not t.confirmation
    ]
    best = best_of(totals, record.direction)
    rows = _row_by_number(conn, record, [best[1]]) if best is not None else []
    return rows[0] if rows else None


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


def _running_epochs(conn: Connection, record: StudyRecord) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(trial_runs)
            .join(optuna_intermediate, optuna_intermediate.c.trial_id == trial_runs.c.trial_id)
            .where(trial_runs.c.study_id == record.study_id)
        ).scalar_one()
    )


def study_summary(conn: Connection, record: StudyRecord) -> StudySummary:
    """Counts per state, finished trials, best trial and epochs spent/saved.

    The same summary as :func:`storage._summary_scan.study_summary_scan` in a constant number of
    small queries, whatever the study's size: the study's aggregates
    (storage._aggregates: finished trials per state, retried failures, epochs,
    the best trial's number), its RUNNING and WAITING trials through a partial
    index, the best trial's row, the confirmation marker when the study has a
    confirmation phase, and the epochs reported so far by running trials.

    Args:
        conn: A connection to the storage.
        record: The study.

    Returns:
        The summary; ``counts`` has all five states, zeros included.
    """
    sid = record.study_id
    totals = read_totals(conn, [sid])[sid]
    spec = record.definition.confirm
    marked = confirmation_marked(conn, [sid]) if spec is not None and spec.enabled else set()
    budget = budget_of(
        record,
        totals,
        unfinished_counts(conn, [sid])[sid],
        confirm_pending=confirm_pending(record, marked),
    )
    best = best_of([t for t in totals if not t.confirmation], record.direction)
    rows = _row_by_number(conn, record, [best[1]]) if best is not None else []
    saved = sum(t.n_pruned * record.max_epochs - t.pruned_epochs for t in totals)
    return StudySummary(
        counts={**dict.fromkeys(TRIAL_STATES, 0), **budget.by_state},
        finished=budget.finished - budget.retried,
        best=rows[0] if rows else None,
        epochs_spent=sum(t.epochs_run for t in totals) + _running_epochs(conn, record),
        epochs_saved=max(0, saved),
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


def _medians(
    conn: Connection, record: StudyRecord, *, confirmations: bool = True
) -> dict[str, float]:
    tr = trial_results.c
    where = sa.and_(
        tr.study_id == record.study_id,
        tr.state.in_(("COMPLETE", "PRUNED")),
        is_finite(tr.value),
        # A probe per row: spared when the study has no finished confirmation.
        is_search_trial(tr.trial_id) if confirmations else sa.true(),
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


def _medians_by_rank(
    conn: Connection, record: StudyRecord, sizes: dict[str, int]
) -> dict[str, float]:
    """Each schedule's median from its middle one or two values, read by rank.

    ``sizes`` (from the running totals) says how many COMPLETE and PRUNED
    finite values each schedule has, so the middle ones are at known ranks:
    per schedule, the two states' index ranges in value order, merged, from
    that offset on (PostgreSQL reads them through the index without sorting).
    The result equals :func:`_medians`'s: ``percentile_cont(0.5)``'s
    interpolation on PostgreSQL, the mean of the two middle values on SQLite.
    Only for studies without confirmation trials (they are not told apart here).
    """
    tr = trial_results.c
    parts = []
    for i, (schedule, n) in enumerate(sorted(sizes.items())):
        if n < 1:
            continue
        states = [
            sa.select(tr.value.label("value")).where(
                tr.study_id == record.study_id,
                tr.schedule == schedule,
                tr.state == state,
                is_finite(tr.value),
            )
            for state in ("COMPLETE", "PRUNED")
        ]
        if conn.dialect.name == "postgresql":
            # Ordered parts let PostgreSQL merge the two index ranges instead of
            # sorting; SQLite accepts no ORDER BY inside a compound select.
            states = [part.order_by(tr.value) for part in states]
        merged = sa.union_all(*states).subquery(f"m{i}")
        parts.append(
            sa.select(sa.literal(schedule).label("schedule"), merged.c.value)
            .order_by(merged.c.value)
            .offset((n - 1) // 2)
            .limit(2 - n % 2)
            .subquery(f"p{i}")
        )
    middle: dict[str, list[float]] = {}
    if parts:
        for schedule, value in conn.execute(sa.union_all(*(sa.select(p) for p in parts))):
            middle.setdefault(str(schedule), []).append(float(value))
    out = {}
    for schedule, values in middle.items():
        lo, hi = min(values), max(values)
        out[schedule] = lo + 0.5 * (hi - lo) if conn.dialect.name == "postgresql" else (lo + hi) / 2
    return out


def _ranked(
    record: StudyRecord,
    counts: dict[str, tuple[int, int, int]],
    medians: dict[str, float],
    best: dict[str, TrialRow],
) -> list[ScheduleStats]:
    stats = [
        ScheduleStats(
            schedule=schedule,
            best=best.get(schedule),
            n_complete=counts.get(schedule, (0, 0, 0))[0],
            n_pruned=counts.get(schedule, (0, 0, 0))[1],
            n_failed=counts.get(schedule, (0, 0, 0))[2],
            median_value=medians.get(schedule),
        )
        for schedule in dict.fromkeys(record.definition.search_space.schedules)
    ]
    row_key = best_key(record.direction)
    with_best = [(s, s.best) for s in stats if s.best is not None]
    # Schedules with a best trial first, best of all first; the rest keep definition order.
    ranked = [s for s, _ in sorted(with_best, key=lambda pair: row_key(pair[1]))]
    return ranked + [s for s in stats if s.best is None]


def best_per_schedule(conn: Connection, record: StudyRecord) -> list[ScheduleStats]:
    """Best trial, counts and median final value for each schedule of the definition.

    The same entries as :func:`storage._summary_scan.best_per_schedule_scan`, with the counts and
    each schedule's best trial number from the study's aggregates
    (storage._aggregates): one query for them, one for the best trials' rows,
    and the medians, which no running total gives exactly (one aggregate over
    the study's COMPLETE and PRUNED rows, without a per-row confirmation probe
    when the study has no finished confirmation).

    Args:
        conn: A connection to the storage.
        record: The study.

    Returns:
        One entry per schedule of ``record.definition.search_space.schedules``.
    """
    totals = read_totals(conn, [record.study_id])[record.study_id]
    search = {t.schedule: t for t in totals if not t.confirmation and t.schedule is not None}
    counts = {s: (t.n_complete, t.n_pruned, t.n_fail - t.n_retried) for s, t in search.items()}
    numbers = {b[1]: s for s, t in search.items() if (b := t.best(record.direction)) is not None}
    rows = _row_by_number(conn, record, sorted(numbers)) if numbers else []
    best = {numbers[row.number]: row for row in rows}
    if any(t.confirmation for t in totals):
        medians = _medians(conn, record)  # confirmations must be left out row by row
    else:
        medians = _medians_by_rank(conn, record, {s: t.n_valued for s, t in search.items()})
    return _ranked(record, counts, medians, best)
