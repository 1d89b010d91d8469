"""Bounded queries the dashboard needs beside the result queries.

Each reads at most ``limit`` rows of ``lrsearch_trials`` through its
``(study_id, number)`` or ``(study_id, state, value)`` index, so their cost
does not grow with the study: the dashboard of a 20,000-trial study asks for
a few dozen curves and a sample of a few thousand points, never every trial.

Samples (:func:`strided_rows`): every ``stride``-th trial number, the numbers
computed here (multiples of ``stride`` up to the study's highest number) and
looked up through the ``(study_id, number)`` index, so a sample of 2,000 of
100,000 trials reads about 2,000 rows. Their ``total`` comes from the running
totals of ``storage/_aggregates.py`` less the few trials that those count but
the sample leaves out (a non-finite value or learning rate), found through an
index: no count reads every trial either.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._aggregates import read_totals
from lrsearch.storage._results import ROW_COLUMNS, TrialRow, is_finite, row_from_mapping
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results

MAX_SCATTER_POINTS = 10_000
MAX_IMPORTANCE_TRIALS = 10_000
_SCATTER_STATES = ("COMPLETE", "PRUNED")

_optuna_params = _optuna.trial_params
# Trial numbers looked up per query by strided_rows: at first the sample size (at
# least _FIRST_CHUNK), doubled while few of them match, at most _MAX_CHUNK.
_FIRST_CHUNK = 64
_MAX_CHUNK = 8192


@dataclass(frozen=True)
class ScatterSample:
    """Finished trials as (number, learning rate, final value, schedule, state) columns.

    ``total`` is how many trials qualify; the columns hold at most the
    requested number of them, spread evenly over trial numbers.
    """

    total: int
    numbers: list[int]
    learning_rates: list[float]
    values: list[float]
    schedules: list[str | None]
    states: list[str]


def recent_trials(
    conn: Connection, record: StudyRecord, *, states: Sequence[str], limit: int
) -> list[TrialRow]:
    """The ``limit`` most recent finished trials (highest numbers) in ``states``, newest first."""
    if limit < 1 or not states:
        return []
    tr = trial_results.c
    query = (
        sa.select(*ROW_COLUMNS)
        .where(tr.study_id == record.study_id, tr.state.in_(list(states)))
        .order_by(tr.number.desc())
        .limit(limit)
    )
    return [row_from_mapping(r._mapping) for r in conn.execute(query)]


def trials_by_number(
    conn: Connection, record: StudyRecord, numbers: Sequence[int]
) -> dict[int, TrialRow]:
    """Summary rows of the given finished trials (unknown or unfinished ones left out)."""
    wanted = sorted({int(n) for n in numbers})
    if not wanted:
        return {}
    tr = trial_results.c
    query = sa.select(*ROW_COLUMNS).where(tr.study_id == record.study_id, tr.number.in_(wanted))
    rows = (row_from_mapping(r._mapping) for r in conn.execute(query))
    return {row.number: row for row in rows}


def scatter_sample(conn: Connection, record: StudyRecord, *, limit: int) -> ScatterSample:
    """Up to ``limit`` COMPLETE or PRUNED trials with a finite value and learning rate.

    When more trials qualify, every ``stride``-th trial number is taken
    (``stride = ceil(total / limit)``), which spreads the sample evenly over
    the study's history; see :func:`strided_rows`. A few indexed queries, however
    big the study.

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_SCATTER_POINTS`.
    """
    if not 1 <= limit <= MAX_SCATTER_POINTS:
        raise ValueError(f"limit must lie in [1, {MAX_SCATTER_POINTS}], not {limit}")
    tr = trial_results.c
    where = sa.and_(tr.state.in_(_SCATTER_STATES), is_finite(tr.value), is_finite(tr.learning_rate))
    total = valued_count(conn, record)
    if total:
        # The running totals count a finished trial with a value whatever its learning rate.
        lacking = sa.and_(tr.state.in_(_SCATTER_STATES), is_finite(tr.value))
        total -= _count_not_finite(conn, record, tr.learning_rate, lacking)
    columns = (tr.number, tr.learning_rate, tr.value, tr.schedule, tr.state)
    rows = strided_rows(conn, record, columns, where, stride=-(-total // limit), limit=limit)
    return ScatterSample(
        total=total,
        numbers=[int(r[0]) for r in rows],
        learning_rates=[float(r[1]) for r in rows],
        values=[float(r[2]) for r in rows],
        schedules=[None if r[3] is None else str(r[3]) for r in rows],
        states=[str(r[4]) for r in rows],
    )


@lru_cache(maxsize=256)
def _distribution(distribution_json: str) -> BaseDistribution:
    # A study has a few dozen distinct distributions; parse each once.
    return json_to_distribution(distribution_json)


def importance_sample(conn: Connection, record: StudyRecord, *, limit: int) -> list[FrozenTrial]:
    """Up to ``limit`` COMPLETE trials with a finite value, as Optuna trials, for importance.

    Spread evenly over trial numbers like :func:`scatter_sample`, with their
    parameters and distributions from Optuna's ``trial_params`` table: a few
    queries, and ``limit`` trials built in Python however big the study is.
    Only what importance evaluators read is filled in (params, distributions,
    value); the trials' numbers are their positions in the sample.

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_IMPORTANCE_TRIALS`.
    """
    if not 1 <= limit <= MAX_IMPORTANCE_TRIALS:
        raise ValueError(f"limit must lie in [1, {MAX_IMPORTANCE_TRIALS}], not {limit}")
    tr = trial_results.c
    where = sa.and_(tr.state == "COMPLETE", is_finite(tr.value))
    stride = -(-complete_count(conn, record) // limit)
    rows = strided_rows(conn, record, (tr.trial_id, tr.value), where, stride=stride, limit=limit)
    values = {int(i): float(v) for i, v in rows}
    params: dict[int, dict[str, tuple[float, BaseDistribution]]] = {i: {} for i in values}
    p = _optuna_params.c
    for trial_id, name, internal, dist_json in conn.execute(
        sa.select(p.trial_id, p.param_name, p.param_value, p.distribution_json).where(
            p.trial_id.in_(list(values))
        )
    ):
        params[int(trial_id)][str(name)] = (float(internal), _distribution(str(dist_json)))
    trials = []
    for number, (trial_id, value) in enumerate(values.items()):
        dists = {name: dist for name, (_, dist) in params[trial_id].items()}
        external = {
            name: dist.to_external_repr(internal)
            for name, (internal, dist) in params[trial_id].items()
        }
        trial = optuna.trial.create_trial(value=value, params=external, distributions=dists)
        trial.number = number
        trials.append(trial)
    return trials


def not_finite(column: Any) -> Any:
    """SQL condition: NULL, NaN or ±inf, as index ranges (``NOT is_finite`` is not one)."""
    big = sys.float_info.max
    # NaN sorts above every number on PostgreSQL; SQLite stores it as NULL.
    return sa.or_(column.is_(None), column > big, column < -big)


def _count_not_finite(conn: Connection, record: StudyRecord, column: Any, *conditions: Any) -> int:
    """The study's rows with ``conditions`` whose ``column`` is NULL, NaN or ±inf.

    One count per range of the index on ``column`` (PostgreSQL would rather
    filter every entry than combine the ranges of an ``OR``), in one statement.
    """
    mine = trial_results.c.study_id == record.study_id
    big = sys.float_info.max
    counts = [
        sa.select(sa.func.count()).where(mine, *conditions, part).scalar_subquery()
        for part in (column.is_(None), column > big, column < -big)
    ]
    return int(conn.execute(sa.select(counts[0] + counts[1] + counts[2])).scalar_one())


def valued_count(conn: Connection, record: StudyRecord) -> int:
    """COMPLETE and PRUNED trials with a finite value, from the running totals."""
    return sum(t.n_valued for t in read_totals(conn, [record.study_id])[record.study_id])


def complete_count(conn: Connection, record: StudyRecord, schedule: str | None = None) -> int:
    """COMPLETE trials with a finite value (of ``schedule`` if given).

    The running totals' COMPLETE trials less those without a finite value,
    which the ``(study_id, [schedule,] state, value)`` index finds.
    """
    totals = read_totals(conn, [record.study_id])[record.study_id]
    n = sum(t.n_complete for t in totals if schedule is None or t.schedule == schedule)
    if not n:
        return 0
    tr = trial_results.c
    where = [tr.state == "COMPLETE"]
    if schedule is not None:
        where.append(tr.schedule == schedule)
    return n - _count_not_finite(conn, record, tr.value, *where)


def _number_among(conn: Connection, numbers: list[int]) -> Any:
    number = trial_results.c.number
    if conn.dialect.name == "postgresql":
        # One array parameter: a short statement to plan, however many numbers.
        array = sa.bindparam(None, numbers, type_=postgresql.ARRAY(sa.Integer))
        return number == sa.any_(array)
    return number.in_(numbers)


def strided_rows(
    conn: Connection,
    record: StudyRecord,
    columns: Sequence[Any],
    where: Any,
    *,
    stride: int,
    limit: int,
) -> list[tuple[Any, ...]]:
    """The first ``limit`` rows of the study that match ``where`` and whose number is a
    multiple of ``stride``, in number order.

    What ``WHERE number % stride = 0 ORDER BY number LIMIT limit`` returns,
    without reading every row: the multiples of ``stride`` up to the study's
    highest trial number are looked up through the ``(study_id, number)``
    index, a chunk at a time until ``limit`` rows matched (a chunk grows when
    few numbers match, e.g. one schedule's trials). With ``stride`` 1 (the
    study has at most ``limit`` such trials) a plain ordered query.
    """
    tr = trial_results.c
    mine = tr.study_id == record.study_id
    base = sa.select(*columns).where(mine, where).order_by(tr.number)
    if stride <= 1:
        return [tuple(r) for r in conn.execute(base.limit(limit))]
    top = conn.execute(sa.select(sa.func.max(tr.number)).where(mine)).scalar()
    out: list[tuple[Any, ...]] = []
    start, size = 0, max(limit, _FIRST_CHUNK)
    while top is not None and start <= top and len(out) < limit:
        chunk = list(range(start, min(int(top), start + stride * (size - 1)) + 1, stride))
        query = base.where(_number_among(conn, chunk)).limit(limit - len(out))
        found = [tuple(r) for r in conn.execute(query)]
        out += found
        start = chunk[-1] + stride
        if len(found) < len(chunk) // 2:
            size = min(size * 2, _MAX_CHUNK)
    return out
