"""Bounded queries of the dashboard's analysis views, failures and the study note.

- :func:`history`: the best value so far against trial number and epochs
  spent. One windowed pass over the study's finished summary rows returns
  only the trials that improved on every earlier one (a step function) and
  an evenly spread sample of the others, at most ``limit`` of each.
- :func:`param_sample`: the sampled parameters and final value of up to
  ``limit`` complete trials (optionally of one schedule type), for parallel
  coordinates and per-parameter slices; spread over trial numbers like the
  scatter sample, through the ``(study_id, state, value)`` or
  ``(study_id, schedule, state, value)`` index.
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

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_ANALYSIS_POINTS`.
    """
    _check_limit(limit)
    tr = trial_results.c
    mine = tr.study_id == record.study_id
    total = int(
        conn.execute(
            sa.select(sa.func.count()).where(mine, is_finite(tr.value), tr.state != "FAIL")
        ).scalar_one()
    )
    stride = max(1, -(-total // limit))
    counted = sa.case((sa.and_(tr.state == "COMPLETE", is_finite(tr.value)), tr.value))
    best = sa.func.max if record.direction == "maximize" else sa.func.min
    inner = (
        sa.select(
            tr.number,
            tr.state,
            tr.value,
            sa.func.sum(tr.epochs_run).over(order_by=tr.number, rows=(None, 0)).label("epochs"),
            best(counted).over(order_by=tr.number, rows=(None, 0)).label("best"),
        )
        .where(mine)
        .subquery("h")
    )
    h = inner.c
    is_record = sa.and_(h.state == "COMPLETE", is_finite(h.value), h.value == h.best)
    sampled = sa.and_(h.state != "FAIL", is_finite(h.value), h.number % stride == 0)
    rows = conn.execute(
        sa.select(h.number, h.state, h.value, h.epochs, is_record.label("rec"))
        .where(sa.or_(is_record, sampled))
        .order_by(h.number)
    ).all()
    out: dict[str, list[Any]] = {k: [] for k in ("n", "v", "s", "e", "rn", "rv", "re")}
    for number, state, value, epochs, rec in rows:
        if rec and len(out["rn"]) < limit:
            out["rn"].append(int(number))
            out["rv"].append(float(value))
            out["re"].append(int(epochs or 0))
        if int(number) % stride == 0 and state != "FAIL" and len(out["n"]) < limit:
            out["n"].append(int(number))
            out["v"].append(float(value))
            out["s"].append(str(state))
            out["e"].append(int(epochs or 0))
    return History(
        total=total,
        numbers=out["n"],
        values=out["v"],
        states=out["s"],
        epochs=out["e"],
        record_numbers=out["rn"],
        record_values=out["rv"],
        record_epochs=out["re"],
    )


def param_sample(
    conn: Connection, record: StudyRecord, *, schedule: str | None, limit: int
) -> ParamSample:
    """Up to ``limit`` complete trials with a finite value, of ``schedule`` if given.

    Every ``ceil(total / limit)``-th trial number when more qualify; two queries.

    Raises:
        ValueError: ``limit`` outside 1..:data:`MAX_ANALYSIS_POINTS`.
    """
    _check_limit(limit)
    tr = trial_results.c
    where = sa.and_(tr.study_id == record.study_id, tr.state == "COMPLETE", is_finite(tr.value))
    if schedule is not None:
        where = sa.and_(where, tr.schedule == schedule)
    total = int(conn.execute(sa.select(sa.func.count()).where(where)).scalar_one())
    query = sa.select(tr.number, tr.value, tr.schedule, tr.params).where(where)
    if total > limit:
        query = query.where(tr.number % -(-total // limit) == 0)
    rows = conn.execute(query.order_by(tr.number).limit(limit)).all()
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


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


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
