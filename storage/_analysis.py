"""Bounded queries of the dashboard's analysis views, failures and the study note.

- :func:`history`: the best value so far against trial number and epochs
  spent: the trials that improved on every earlier one (a step function,
  walked through an index) and an evenly spread sample of the others, at
  most ``limit`` of each.
- :func:`param_sample`: the sampled parameters and final value of up to
  ``limit`` complete trials (optionally of one schedule type), for parallel
  coordinates and per-parameter slices; spread over trial numbers like the
  scatter sample, looked up through the ``(study_id, number)`` index.
- :func:`failure_summary`: how many trials failed and their most common
  error messages (a ``GROUP BY`` over the study's failed rows only).
- :func:`read_note` / :func:`write_note`: the study's note, kept where
  optuna-dashboard keeps its study note (study system attrs
  ``dashboard:note_ver`` and ``dashboard:note_str:<i>``, chunks of at most
  2,045 characters), so both dashboards show the same text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage._aggregates import read_totals
from lrsearch.storage._dashboard_queries import complete_count, strided_rows
from lrsearch.storage._engine import Backend
from lrsearch.storage._results import is_finite
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results

MAX_ANALYSIS_POINTS = 10_000
MAX_ERRORS = 20
NOTE_VERSION_KEY = "dashboard:note_ver"
NOTE_CHUNK_PREFIX = "dashboard:note_str:"
NOTE_CHUNK = 2045  # optuna-dashboard's SYSTEM_ATTR_MAX_LENGTH

_study_system_attrs = sa.table(
    "study_system_attributes",
    sa.column("study_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)


@dataclass(frozen=True)
class History:
    """Finished trials in number order with the best complete value up to each.

    ``records`` are the trials that set a new best (the best-so-far line);
    ``numbers`` etc. an evenly spread sample of finished trials with a value.
    ``epochs`` counts the epochs every finished trial up to and including
    that one trained.
    """

    total: int
    numbers: list[int]
    values: list[float]
    states: list[str]
    epochs: list[int]
    record_numbers: list[int]
    record_values: list[float]
    record_epochs: list[int]


@dataclass(frozen=True)
class ParamSample:
    """Complete trials' parameters as columns: ``params[name][i]`` belongs to ``numbers[i]``."""

    total: int
    numbers: list[int]
    values: list[float]
    schedules: list[str | None]
    params: dict[str, list[Any]]


@dataclass(frozen=True)
class ErrorCount:
    """One error message and how many failed trials ended with it."""

    message: str
    count: int
    example: int
    """The number of the latest trial that failed with it."""


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_ANALYSIS_POINTS:
        raise ValueError(f"limit must lie in [1, {MAX_ANALYSIS_POINTS}], not {limit}")


def history(conn: Connection, record: StudyRecord, *, limit: int) -> History:
    """The best value so far by trial number and by epochs spent; see :class:`History`.

    Reads a bounded part of the study, not every trial:

    - ``total`` from the running totals (``storage/_aggregates.py``);
    - the sample: every ``ceil(total / limit)``-th trial number, looked up
      through the ``(study_id, number)`` index (:func:`strided_rows`);
    - the records: walked from the first COMPLETE trial, each step asking the
      index for the next trials that are at least as good as the best so far
      (a handful of queries: a study has about ``log(n)`` records, and a run of
      ties is fetched in growing batches);
    - epochs spent (the sum of ``epochs_run`` over all finished trials numbered
      up to a trial): exact while every trial is in the sample (``stride``
      1) or the study's trial numbers fit in ``limit``. Beyond, it is
      estimated, since the exact sum needs every trial's epochs (a full scan,
      the cost this avoids): ``epochs_run`` of every ``g``-th trial number
      stands for the ``g`` numbers up to it, a missing trial for none, and the
      sums are scaled so that the highest number gets the exact total of the
      running totals; between two such numbers (a record) it is interpolated
      (:func:`estimate_spent`). ``g`` is the sample's ``stride`` (the sample
      is then read with every state, one query for both) unless that makes
      more than ``2 * limit`` numbers (mostly failed trials), then
      ``ceil((highest number + 1) / limit)`` (a second query). The estimate
      never decreases with the number; its error is that of a systematic
      sample of about ``limit`` trials.

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_ANALYSIS_POINTS`.
    """
    _check_limit(limit)
    tr = trial_results.c
    totals = read_totals(conn, [record.study_id])[record.study_id]
    total = sum(t.n_valued for t in totals)
    stride = max(1, -(-total // limit))
    mine = tr.study_id == record.study_id
    top = conn.execute(sa.select(sa.func.max(tr.number)).where(mine)).scalar()
    if top is None:
        return History(total, [], [], [], [], [], [], [])
    top = int(top)
    grid = stride if top // stride < 2 * limit else -(-(top + 1) // limit)
    columns = (tr.number, tr.epochs_run, tr.state, tr.value)
    rows = strided_rows(conn, record, columns, sa.true(), stride=grid, limit=top // grid + 1)
    if grid == stride:
        sample = [r for r in rows if r[2] != "FAIL" and is_finite_number(r[3])][:limit]
    else:
        valued = sa.and_(tr.state != "FAIL", is_finite(tr.value))
        sample = strided_rows(conn, record, columns, valued, stride=stride, limit=limit)
    records = _records(conn, record, limit)
    spent = estimate_spent(
        {int(r[0]): int(r[1] or 0) for r in rows},
        grid,
        top,
        sum(t.epochs_run for t in totals),
        [int(r[0]) for r in sample] + [n for n, _ in records],
    )
    return History(
        total=total,
        numbers=[int(r[0]) for r in sample],
        values=[float(r[3]) for r in sample],
        states=[str(r[2]) for r in sample],
        epochs=[spent[int(r[0])] for r in sample],
        record_numbers=[n for n, _ in records],
        record_values=[v for _, v in records],
        record_epochs=[spent[n] for n, _ in records],
    )


def _records(conn: Connection, record: StudyRecord, limit: int) -> list[tuple[int, float]]:
    """The first ``limit`` COMPLETE trials with a finite value at least as good as every
    earlier one (ties included), in number order.

    Each query asks for the next ``batch`` trials after the last one seen that
    are at least as good as the best so far, through the ``(study_id, state,
    number)`` or ``(study_id, state, value)`` index; a batch whose trials all
    were records (a run of ties) makes the next one bigger.
    """
    tr = trial_results.c
    maximize = record.direction == "maximize"
    base = sa.select(tr.number, tr.value).where(
        tr.study_id == record.study_id, tr.state == "COMPLETE", is_finite(tr.value)
    )
    out: list[tuple[int, float]] = []
    best: float | None = None
    after, batch = -1, 4
    while len(out) < limit:
        query = base.where(tr.number > after)
        if best is not None:
            query = query.where(tr.value >= best if maximize else tr.value <= best)
        rows = conn.execute(query.order_by(tr.number).limit(batch)).all()
        hits = 0
        for number, value in rows:
            v = float(value)
            if best is None or (v >= best if maximize else v <= best):
                best = v
                out.append((int(number), v))
                hits += 1
        if len(rows) < batch:
            break
        after = int(rows[-1][0])
        batch = min(batch * 4, 1024) if hits == len(rows) else 4
    return out[:limit]


def estimate_spent(
    epochs: dict[int, int], grid: int, top: int, total: int, numbers: list[int]
) -> dict[int, int]:
    """Epochs spent up to each of ``numbers``, from the trials numbered ``0, grid, 2 grid, ...``.

    Args:
        epochs: ``epochs_run`` of the finished trials among ``0, grid, ...`` (a
            number missing here has no finished trial).
        grid: The step between those numbers; with 1, the result is exact.
        top: The study's highest finished trial number.
        total: The epochs of all the study's finished trials (exact).
        numbers: Where the sum is wanted.

    ``epochs[k * grid]`` stands for the ``grid`` numbers up to ``k * grid``
    (number 0 for itself), the numbers after the last multiple for the mean;
    the sums are scaled to reach ``total`` at ``top`` and interpolated between
    multiples of ``grid``.
    """
    points = list(range(0, top + 1, grid))
    cum: list[float] = []
    running = 0.0
    for k, point in enumerate(points):
        running += (1 if k == 0 else grid) * epochs.get(point, 0)
        cum.append(running)
    if cum[-1] <= 0:  # no sampled trial ran an epoch: spread the total evenly
        cum = [float(point + 1) for point in points]
    end = cum[-1] + (top - points[-1]) * cum[-1] / (points[-1] + 1)
    scale = total / end
    out = {}
    for n in numbers:
        k = min(n // grid, len(points) - 1)
        at, upto = points[k], cum[k]
        after, later = (points[k + 1], cum[k + 1]) if k + 1 < len(points) else (top, end)
        if n >= top:
            value = end
        elif n == at or after == at:
            value = upto
        else:
            value = upto + (later - upto) * (n - at) / (after - at)
        out[n] = round(value * scale)
    return out


def param_sample(
    conn: Connection, record: StudyRecord, *, schedule: str | None, limit: int
) -> ParamSample:
    """Up to ``limit`` complete trials with a finite value, of ``schedule`` if given.

    Every ``ceil(total / limit)``-th trial number when more qualify, looked up
    through the ``(study_id, number)`` index (:func:`strided_rows`); ``total``
    from the running totals (:func:`complete_count`).

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_ANALYSIS_POINTS`.
    """
    _check_limit(limit)
    tr = trial_results.c
    where = sa.and_(tr.state == "COMPLETE", is_finite(tr.value))
    if schedule is not None:
        where = sa.and_(where, tr.schedule == schedule)
    total = complete_count(conn, record, schedule)
    picked = (tr.number, tr.value, tr.schedule, tr.params)
    rows = strided_rows(conn, record, picked, where, stride=-(-total // limit), limit=limit)
    parsed = []
    for _, _, _, raw in rows:
        try:
            params = json.loads(raw) if raw else {}
        except ValueError:
            params = {}
        parsed.append(params if isinstance(params, dict) else {})
    names = sorted({name for params in parsed for name in params})
    columns = {name: [_plain(p.get(name)) for p in parsed] for name in names}
    return ParamSample(
        total=total,
        numbers=[int(r[0]) for r in rows],
        values=[float(r[1]) for r in rows],
        schedules=[None if r[2] is None else str(r[2]) for r in rows],
        params=columns,
    )


_PLAIN = (int, str, bool, type(None))


def is_finite_number(value: Any) -> bool:
    """Whether a value read back is a finite number (what ``is_finite`` selects in SQL)."""
    return value is not None and math.isfinite(float(value))


def _plain(value: Any) -> Any:
    if type(value) in _PLAIN:  # the common case first: one test per parameter value
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value if isinstance(value, int | str | bool) else str(value)


def failure_summary(
    conn: Connection, record: StudyRecord, *, top: int
) -> tuple[int, list[ErrorCount]]:
    """How many trials failed, and the ``top`` most common error messages with their counts.

    Raises:
        ValueError: ``top`` outside 1..:data:`MAX_ERRORS`.
    """
    if not 1 <= top <= MAX_ERRORS:
        raise ValueError(f"top must lie in [1, {MAX_ERRORS}], not {top}")
    tr = trial_results.c
    failed = sa.and_(tr.study_id == record.study_id, tr.state == "FAIL")
    total = int(conn.execute(sa.select(sa.func.count()).where(failed)).scalar_one())
    if not total:
        return 0, []
    message = sa.func.coalesce(tr.error, "")
    n = sa.func.count().label("n")
    rows = conn.execute(
        sa.select(message.label("message"), n, sa.func.max(tr.number))
        .where(failed)
        .group_by(message)
        .order_by(n.desc(), message)
        .limit(top)
    ).all()
    return total, [ErrorCount(str(m) or "(no message)", int(c), int(e)) for m, c, e in rows]


def read_note(conn: Connection, record: StudyRecord) -> tuple[str, int]:
    """The study's note (markdown) and its version; ``("", 0)`` without one."""
    a = _study_system_attrs.c
    attrs = {
        str(key): json.loads(value)
        for key, value in conn.execute(
            sa.select(a.key, a.value_json).where(
                a.study_id == record.study_id, a.key.startswith("dashboard:note_", autoescape=True)
            )
        )
    }
    if NOTE_VERSION_KEY not in attrs:
        return "", 0
    chunks = {k: v for k, v in attrs.items() if k.startswith(NOTE_CHUNK_PREFIX)}
    body = "".join(str(chunks.get(f"{NOTE_CHUNK_PREFIX}{i}", "")) for i in range(len(chunks)))
    return body, int(attrs[NOTE_VERSION_KEY])


def write_note(backend: Backend, record: StudyRecord, body: str) -> int:
    """Store ``body`` as the study's note, as optuna-dashboard does; returns the new version.

    Chunks beyond the new body's end are blanked, as optuna-dashboard does.
    """
    with backend.engine.connect() as conn:
        _, version = read_note(conn, record)
        a = _study_system_attrs.c
        old_chunks = conn.execute(
            sa.select(sa.func.count()).where(
                a.study_id == record.study_id, a.key.startswith(NOTE_CHUNK_PREFIX, autoescape=True)
            )
        ).scalar_one()
    storage = backend.optuna_storage
    version += 1
    storage.set_study_system_attr(record.study_id, NOTE_VERSION_KEY, version)
    chunks = [body[i : i + NOTE_CHUNK] for i in range(0, len(body), NOTE_CHUNK)]
    for i, chunk in enumerate(chunks):
        storage.set_study_system_attr(record.study_id, f"{NOTE_CHUNK_PREFIX}{i}", chunk)
    for i in range(len(chunks), int(old_chunks)):
        storage.set_study_system_attr(record.study_id, f"{NOTE_CHUNK_PREFIX}{i}", "")
    return version
