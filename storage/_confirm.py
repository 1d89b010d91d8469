"""Confirmed winners: re-train each schedule type's best trials with other seeds.

When a study's definition has an enabled ``confirm: {top_k, seeds}`` and its
search budget is spent (every search trial finished under the budget rule),
the first claimer, under the study lock, enqueues the confirmation trials: for
the ``top_k`` best COMPLETE search trials of each schedule type, ``seeds``
WAITING trials with the same parameters and the user attr ``confirmation_of``
(the original's number). They are not search trials (see
:mod:`lrsearch.storage._budget`) and go out through the normal claim path, to
built-in workers and REST clients alike; their own trial number gives them
another training seed. A confirmation that dies (stale, given back) is retried
like any trial, up to ``max_retries``, and its retry is a confirmation too; one
that fails or is pruned in training is not repeated: it simply does not enter
the mean, which then rests on fewer values (``n`` says how many).

Crash consistency. Optuna writes each enqueued trial in its own transaction,
so the enqueueing is a top-up: for each original, only the confirmations it
lacks are enqueued, and the study user attr ``confirmation`` is written last.
A crash in between leaves the marker unwritten, and the next claimer (under
the same lock) tops up the rest: never a confirmation twice, never one lost.

The leaderboard: per schedule type, each confirmed original forms a group (the
original and its COMPLETE confirmations); the type's confirmed value is the
best group mean, with the sample standard deviation and ``n``. Types are ranked
by that mean where it exists, ahead of unconfirmed ones. Two confirmed types
are *within noise* when ``|m1 - m2| < 2 * sqrt(s1^2/n1 + s2^2/n2)`` (about a
95 % interval on the difference of the means); a group of one value has no
spread and is never flagged.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._aggregates import read_totals
from lrsearch.storage._budget import CONFIRMATION_MARKER, CONFIRMATION_OF
from lrsearch.storage._engine import Backend
from lrsearch.storage._results import ScheduleStats, is_finite
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._summary import best_per_schedule, top_trials_per_schedule
from lrsearch.storage._tables import trial_results

__all__ = [
    "NOISE_FACTOR",
    "Confirmed",
    "ConfirmedSchedule",
    "confirmed_leaderboard",
    "enqueue_confirmations",
]

# Means closer than this many standard errors of their difference are flagged.
NOISE_FACTOR = 2.0


def _existing(conn: Connection, study_id: int) -> dict[int, int]:
    """Confirmations already enqueued per original number (retries not counted)."""
    ua, trials = _optuna.trial_user_attrs, _optuna.trials
    retry = ua.alias("r")
    rows = conn.execute(
        sa.select(ua.c.value_json, sa.func.count())
        .select_from(
            ua.join(trials, trials.c.trial_id == ua.c.trial_id).outerjoin(
                retry, sa.and_(retry.c.trial_id == ua.c.trial_id, retry.c.key == "retry_of")
            )
        )
        .where(trials.c.study_id == study_id, ua.c.key == CONFIRMATION_OF, retry.c.key.is_(None))
        .group_by(ua.c.value_json)
    ).all()
    return {int(json.loads(v)): int(n) for v, n in rows}


def enqueue_confirmations(
    backend: Backend, study: optuna.Study, record: StudyRecord, conn: Connection
) -> int:
    """Enqueue the confirmation trials the study still lacks, then write the marker.

    Call with the study lock held (``conn`` is the lock's connection), once
    the search budget is spent.

    Returns:
        How many trials were enqueued by this call.
    """
    spec = record.definition.confirm
    assert spec is not None
    storage = backend.optuna_storage
    top = top_trials_per_schedule(conn, record, k=spec.top_k)
    existing = _existing(conn, record.study_id)
    originals: list[int] = []
    added = 0
    for rows in top.values():
        for row in rows:
            originals.append(row.number)
            missing = spec.seeds - existing.get(row.number, 0)
            if missing <= 0:
                continue
            trial_id = storage.get_trial_id_from_study_id_trial_number(record.study_id, row.number)
            params = storage.get_trial(trial_id).params
            for _ in range(missing):
                study.enqueue_trial(dict(params), user_attrs={CONFIRMATION_OF: row.number})
                added += 1
    marker = {"top_k": spec.top_k, "seeds": spec.seeds, "of": sorted(originals)}
    storage.set_study_user_attr(record.study_id, CONFIRMATION_MARKER, marker)
    return added


@dataclass(frozen=True)
class Confirmed:
    """One original trial and its completed confirmations, as a mean with its spread."""

    of: int
    mean: float
    std: float | None
    n: int
    values: list[float]
    within_noise: list[str] = field(default_factory=list)
    """Other schedule types whose confirmed mean is within noise of this one."""


@dataclass(frozen=True)
class ConfirmedSchedule:
    """A leaderboard entry: the search's statistics and, once confirmed, the mean."""

    stats: ScheduleStats
    confirmed: Confirmed | None


def _groups(conn: Connection, record: StudyRecord) -> dict[str, list[Confirmed]]:
    """Every confirmed original per schedule type (the original's value first)."""
    totals = read_totals(conn, [record.study_id])[record.study_id]
    if not any(t.confirmation and t.n_complete for t in totals):
        return {}  # no completed confirmation: spare the join over every trial
    ua, tr = _optuna.trial_user_attrs, trial_results.c
    done = sa.and_(tr.study_id == record.study_id, tr.state == "COMPLETE", is_finite(tr.value))
    conf = conn.execute(
        sa.select(ua.c.value_json, tr.value)
        .select_from(trial_results.join(ua, ua.c.trial_id == tr.trial_id))
        .where(done, ua.c.key == CONFIRMATION_OF)
    ).all()
    values: dict[int, list[float]] = {}
    for of, value in conf:
        values.setdefault(int(json.loads(of)), []).append(float(value))
    if not values:
        return {}
    originals = conn.execute(
        sa.select(tr.number, tr.schedule, tr.value).where(done, tr.number.in_(sorted(values)))
    ).all()
    out: dict[str, list[Confirmed]] = {}
    for number, schedule, value in originals:
        vals = [float(value), *values[int(number)]]
        std = statistics.stdev(vals) if len(vals) > 1 else None
        group = Confirmed(int(number), statistics.fmean(vals), std, len(vals), vals)
        out.setdefault(str(schedule), []).append(group)
    return out


def _within_noise(a: Confirmed, b: Confirmed) -> bool:
    if a.std is None or b.std is None:
        return False
    return abs(a.mean - b.mean) < NOISE_FACTOR * math.sqrt(a.std**2 / a.n + b.std**2 / b.n)


def confirmed_leaderboard(conn: Connection, record: StudyRecord) -> list[ConfirmedSchedule]:
    """:func:`best_per_schedule` with each type's confirmed mean, ranked by it (module doc).

    Four queries whatever the study's size: the three of ``best_per_schedule``
    and one join of the confirmations with their values (plus one for their
    originals when there are any).
    """
    stats = best_per_schedule(conn, record)
    sign = -1.0 if record.direction == "maximize" else 1.0
    best: dict[str, Confirmed] = {}
    for schedule, groups in _groups(conn, record).items():
        best[schedule] = min(groups, key=lambda g: (sign * g.mean, g.of))
    for schedule, group in best.items():
        others = [s for s, g in best.items() if s != schedule and _within_noise(group, g)]
        best[schedule] = Confirmed(
            group.of, group.mean, group.std, group.n, group.values, sorted(others)
        )
    confirmed = sorted(
        (s for s in stats if s.schedule in best),
        key=lambda s: (sign * best[s.schedule].mean, best[s.schedule].of),
    )
    # Unconfirmed types keep best_per_schedule's order (best trial first, empty last).
    rest = [s for s in stats if s.schedule not in best]
    return [ConfirmedSchedule(s, best.get(s.schedule)) for s in confirmed + rest]
