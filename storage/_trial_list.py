"""A study's trials sorted by number, value, state or schedule, filtered, keyset-paged.

The dashboard's trial table and ``GET /studies/{name}/trials`` read here. The
finished trials (nearly all of a big study) come from the summary table
``lrsearch_trials``, sorted and cut to one page in SQL after the cursor's
key, through the ``(study_id, number)``, ``(study_id, state, value)`` and
``(study_id, schedule, ...)`` indexes. Running and waiting trials (as many as
there are workers, plus what is enqueued) are read whole with their
parameters, filtered and sorted in Python, and merged with that page.

Every sort ends with the trial number, so a key is unique and a cursor (the
last row's key) resumes exactly after it. Rows without a value (running,
pruned without one, failed) or without a schedule sort last either way.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage._results import (
    ACTIVE_STATES,
    FINISHED_STATES,
    TRIAL_STATES,
    InvalidCursorError,
    TrialRow,
    finite_or_none,
    is_finite,
)
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results
from lrsearch.storage._trial_pages import (
    MAX_PAGE_SIZE,
    _active_part,
    _finished_part,
    _hydrate,
    active_params,
)

TrialSort = Literal["number", "value", "state", "schedule"]
SortOrder = Literal["asc", "desc"]
TRIAL_SORTS: tuple[str, ...] = ("number", "value", "state", "schedule")

# A sort key: [number] | [missing, value, number] | [state, number] | [missing, schedule, number]
Key = list[Any]


def default_order(sort: str, direction: str) -> SortOrder:
    """The order a sort starts in: value best first by the study's direction, else ascending."""
    if sort == "value":
        return "desc" if direction == "maximize" else "asc"
    return "asc"


def _key(sort: str, row: Mapping[Any, Any]) -> Key:
    number = int(row["number"])
    if sort == "number":
        return [number]
    if sort == "state":
        return [str(row["state"]), number]
    if sort == "value":
        value = finite_or_none(row["value"])
        return [1, None, number] if value is None else [0, value, number]
    schedule = row["schedule"]
    return [1, None, number] if schedule is None else [0, str(schedule), number]


def _compare(sort: str, descending: bool, a: Key, b: Key) -> int:
    """-1, 0 or 1: ``a`` before, with or after ``b`` in the listing."""

    def cmp(x: Any, y: Any) -> int:
        return int(x > y) - int(x < y)

    sign = -1 if descending else 1
    if sort == "number":
        return sign * cmp(a[0], b[0])
    if sort == "state":
        return sign * cmp(a[0], b[0]) or cmp(a[1], b[1])
    # value / schedule: missing ones last whatever the order, then ties by number.
    if a[0] != b[0]:
        return cmp(a[0], b[0])
    if a[0] == 0 and a[1] != b[1]:
        return sign * cmp(a[1], b[1])
    return cmp(a[2], b[2])


def _sql_order(src: Any, sort: str, descending: bool) -> list[Any]:
    def way(col: Any) -> Any:
        return col.desc() if descending else col.asc()

    c = src.c
    if sort == "number":
        return [way(c.number)]
    if sort == "state":
        return [way(c.state), c.number.asc()]
    if sort == "value":
        has = is_finite(c.value)
        return [sa.case((has, 0), else_=1), way(sa.case((has, c.value))), c.number.asc()]
    return [sa.case((c.schedule.is_(None), 1), else_=0), way(c.schedule), c.number.asc()]


def _sql_after(src: Any, sort: str, descending: bool, key: Key) -> Any:
    """SQL condition: the row comes after ``key`` in the listing."""
    c = src.c

    def beyond(col: Any, value: Any) -> Any:
        return col < value if descending else col > value

    if sort == "number":
        return beyond(c.number, key[0])
    if sort == "state":
        return sa.or_(beyond(c.state, key[0]), sa.and_(c.state == key[0], c.number > key[1]))
    present = is_finite(c.value) if sort == "value" else c.schedule.is_not(None)
    col = c.value if sort == "value" else c.schedule
    missing, value, number = key
    if missing == 1:
        return sa.and_(sa.not_(present), c.number > number)
    later = sa.or_(beyond(col, value), sa.and_(col == value, c.number > number))
    return sa.or_(sa.not_(present), sa.and_(present, later))


def _encode(record: StudyRecord, sort: str, order: str, key: Key) -> str:
    payload = {"s": record.study_id, "o": f"{sort}:{order}", "k": key}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _is_int(value: Any) -> bool:
    # Within a 32-bit INTEGER column's range, so a forged cursor cannot overflow it.
    return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31


def _decode(cursor: str, record: StudyRecord, sort: str, order: str) -> Key:
    bad = InvalidCursorError(f"invalid cursor {cursor[:40]!r} for this listing")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, dict) or data.get("s") != record.study_id:
        raise bad
    key = data.get("k")
    if data.get("o") != f"{sort}:{order}" or not isinstance(key, list) or not key:
        raise bad
    if not _is_int(key[-1]):
        raise bad
    if sort == "number" and len(key) == 1:
        return key
    if sort == "state" and len(key) == 2 and key[0] in TRIAL_STATES:
        return key
    if sort in ("value", "schedule") and len(key) == 3:
        missing, value = key[0], key[1]
        if missing == 1 and value is None:
            return key
        if sort == "schedule" and missing == 0 and isinstance(value, str) and len(value) <= 64:
            return key
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if sort == "value" and missing == 0 and is_number and math.isfinite(value):
            return key
    raise bad


def list_trial_page(
    conn: Connection,
    record: StudyRecord,
    *,
    states: Sequence[str] | None = None,
    schedules: Sequence[str] | None = None,
    sort: TrialSort = "number",
    order: SortOrder | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[TrialRow], str | None]:
    """One page of the study's trials and the cursor of the next page (``None`` at the end).

    Args:
        conn: A connection to the storage.
        record: The study.
        states: Only trials in these states; ``None`` for all.
        schedules: Only trials of these schedule types; ``None`` for all.
        sort: ``number``, ``value``, ``state`` or ``schedule``; ties by number.
        order: ``asc`` or ``desc``; ``None`` for :func:`default_order`.
        cursor: The cursor a previous page of the same listing returned.
        limit: Page size, 1 to :data:`MAX_PAGE_SIZE`.

    Raises:
        InvalidCursorError: ``cursor`` was not handed out for this study, sort and order.
        ValueError: An unknown state, sort or order, or ``limit`` out of range
            (the caller validates these before calling).
    """
    if sort not in TRIAL_SORTS or order not in (None, "asc", "desc"):
        raise ValueError(f"unknown sort {sort!r} or order {order!r}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must lie in [1, {MAX_PAGE_SIZE}], not {limit}")
    wanted = tuple(TRIAL_STATES if states is None else states)
    if set(wanted) - set(TRIAL_STATES):
        raise ValueError(f"unknown trial states {sorted(set(wanted) - set(TRIAL_STATES))}")
    order = order or default_order(sort, record.direction)
    descending = order == "desc"
    key = _decode(cursor, record, sort, order) if cursor is not None else None
    rows: list[Mapping[Any, Any]] = []
    finished = [s for s in FINISHED_STATES if s in wanted]
    if finished:
        part = _finished_part(record, finished)
        if schedules is not None:
            part = part.where(trial_results.c.schedule.in_(list(schedules)))
        src = part.subquery("f")
        query = sa.select(src).order_by(*_sql_order(src, sort, descending))
        if key is not None:
            query = query.where(_sql_after(src, sort, descending, key))
        rows += [r._mapping for r in conn.execute(query.limit(limit + 1))]
    active = [s for s in ACTIVE_STATES if s in wanted]
    if active:
        rows += _active_rows(conn, record, active, schedules, sort, descending, key)
    compare = functools.partial(_compare, sort, descending)
    rows.sort(key=functools.cmp_to_key(lambda a, b: compare(_key(sort, a), _key(sort, b))))
    more = len(rows) > limit
    rows = rows[:limit]
    trials = _hydrate(conn, rows)
    if not more:
        return trials, None
    return trials, _encode(record, sort, order, _key(sort, rows[-1]))


def _active_rows(
    conn: Connection,
    record: StudyRecord,
    states: list[str],
    schedules: Sequence[str] | None,
    sort: str,
    descending: bool,
    key: Key | None,
) -> list[Mapping[Any, Any]]:
    """Running/waiting trials after ``key``, with their schedule (from their parameters)."""
    found = [dict(r._mapping) for r in conn.execute(_active_part(record, states))]
    if not found:
        return []
    params = active_params(conn, [int(r["trial_id"]) for r in found])
    out: list[Mapping[Any, Any]] = []
    for row in found:
        schedule = params.get(int(row["trial_id"]), {}).get("schedule")
        row["schedule"] = None if schedule is None else str(schedule)
        if schedules is not None and row["schedule"] not in schedules:
            continue
        if key is not None and _compare(sort, descending, _key(sort, row), key) <= 0:
            continue
        out.append(row)
    return out
