"""Bounded queries the dashboard needs beside the result queries.

Each reads at most ``limit`` rows of ``lrsearch_trials`` through its
``(study_id, number)`` or ``(study_id, state, value)`` index, so their cost
does not grow with the study: the dashboard of a 20,000-trial study asks for
a few dozen curves and a sample of a few thousand points, never every trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import optuna
import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._results import ROW_COLUMNS, TrialRow, is_finite, row_from_mapping
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results

MAX_SCATTER_POINTS = 10_000
MAX_IMPORTANCE_TRIALS = 10_000
_SCATTER_STATES = ("COMPLETE", "PRUNED")

_optuna_params = _optuna.trial_params


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
    the study's history. Two queries: a count, then the sample.

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_SCATTER_POINTS`.
    """
    if not 1 <= limit <= MAX_SCATTER_POINTS:
        raise ValueError(f"limit must lie in [1, {MAX_SCATTER_POINTS}], not {limit}")
    tr = trial_results.c
    where = sa.and_(
        tr.study_id == record.study_id,
        tr.state.in_(_SCATTER_STATES),
        is_finite(tr.value),
        is_finite(tr.learning_rate),
    )
    total = int(conn.execute(sa.select(sa.func.count()).where(where)).scalar_one())
    query = sa.select(tr.number, tr.learning_rate, tr.value, tr.schedule, tr.state).where(where)
    if total > limit:
        stride = -(-total // limit)
        query = query.where(tr.number % stride == 0)
    rows = conn.execute(query.order_by(tr.number).limit(limit)).all()
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
    parameters and distributions from Optuna's ``trial_params`` table: three
    queries, and ``limit`` trials built in Python however big the study is.
    Only what importance evaluators read is filled in (params, distributions,
    value); the trials' numbers are their positions in the sample.

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_IMPORTANCE_TRIALS`.
    """
    if not 1 <= limit <= MAX_IMPORTANCE_TRIALS:
        raise ValueError(f"limit must lie in [1, {MAX_IMPORTANCE_TRIALS}], not {limit}")
    tr = trial_results.c
    where = sa.and_(tr.study_id == record.study_id, tr.state == "COMPLETE", is_finite(tr.value))
    total = int(conn.execute(sa.select(sa.func.count()).where(where)).scalar_one())
    query = sa.select(tr.trial_id, tr.value).where(where)
    if total > limit:
        query = query.where(tr.number % -(-total // limit) == 0)
    values = {int(i): float(v) for i, v in conn.execute(query.order_by(tr.number).limit(limit))}
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
