"""A study's trials sorted by number, value, state or schedule, filtered, keyset-paged.

The dashboard's trial table and ``GET /studies/{name}/trials`` read here. The
finished trials (nearly all of a big study) come from the summary table
``lrsearch_trials``, one page after the cursor's key read in pieces that
the ``(study_id, number)``, ``(study_id, state, number)``, ``(study_id,
state, value)`` and ``(study_id, schedule, number)`` indexes return in order
(see :class:`_Listing`), so a page costs the same at any study size.
Running and waiting trials (as many as there are workers, plus what is
enqueued) are read whole with their parameters, filtered and sorted in
Python, and merged with that page.

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

from lrsearch.storage._aggregates import UNFINISHED
from lrsearch.storage._dashboard_queries import not_finite
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
        listing = _Listing(conn, record, finished, schedules, sort, descending, limit + 1)
        rows += listing.rows(key)
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
    # Spelt as the predicate of revision 0003's partial index over unfinished trials,
    # so that this reads those few instead of every Optuna trial of the study.
    query = _active_part(record, states).where(sa.text(f"trials.{UNFINISHED}"))
    found = [dict(r._mapping) for r in conn.execute(query)]
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


class _Listing:
    """The first ``want`` finished trials after a key, each query an index range scan.

    One ``ORDER BY`` over the whole study (``CASE`` terms, mixed directions) would
    sort every trial; instead the listing is read in pieces that an index
    returns in order, and merged by the caller:

    - ``number``: one query through ``(study_id, number)``, or one per
      filtered state through ``(study_id, state, number)``, merged;
    - ``state``: the states one after the other, each by number through
      ``(study_id, state, number)``, until the page is full;
    - ``value``: one query per state through ``(study_id, state, value)``
      (ties by number: PostgreSQL sorts within equal values only), merged;
      the trials without a finite value (last either way) only when those do
      not fill the page;
    - ``schedule``: the schedule types one after the other (the next one
      found through ``(study_id, schedule, number)``, or the filter's), each
      by number, then the trials without one.
    """

    def __init__(
        self,
        conn: Connection,
        record: StudyRecord,
        states: list[str],
        schedules: Sequence[str] | None,
        sort: str,
        descending: bool,
        want: int,
    ) -> None:
        self.conn, self.record, self.states, self.schedules = conn, record, states, schedules
        self.sort, self.descending, self.want = sort, descending, want

    def _query(self, states: Sequence[str], *where: Any) -> sa.Select[Any]:
        query = _finished_part(self.record, states).where(*where)
        if self.schedules is not None:
            query = query.where(trial_results.c.schedule.in_(list(self.schedules)))
        return query

    def _fetch(self, query: sa.Select[Any], *order: Any) -> list[Mapping[Any, Any]]:
        return [r._mapping for r in self.conn.execute(query.order_by(*order).limit(self.want))]

    def rows(self, key: Key | None) -> list[Mapping[Any, Any]]:
        c = trial_results.c
        if self.sort == "number":
            way = c.number.desc() if self.descending else c.number.asc()
            after = (
                () if key is None else (_sql_after(trial_results, "number", self.descending, key),)
            )
            parts = (
                [self.states]
                if set(self.states) == set(FINISHED_STATES)
                else [[s] for s in self.states]
            )
            return [r for part in parts for r in self._fetch(self._query(part, *after), way)]
        if self.sort == "state":
            return self._groups(sorted(self.states, reverse=self.descending), c.state, key)
        if self.sort == "value":
            return self._values(key)
        if self.schedules is not None:
            return self._groups(sorted(self.schedules, reverse=self.descending), c.schedule, key)
        return self._schedules(key)

    def _groups(self, groups: list[str], col: Any, key: Key | None) -> list[Mapping[Any, Any]]:
        """Each group's trials (``col`` equal to it) by number, groups in the listing's order."""
        out: list[Mapping[Any, Any]] = []
        for group in groups:
            if len(out) >= self.want:
                break
            where = [col == group]
            if key is not None:
                at = key[0] if self.sort == "state" else key[1]
                if key[0] == 1 or _before(group, at, self.descending):
                    continue
                if group == at:
                    where.append(trial_results.c.number > key[-1])
            out += self._fetch(self._query(self.states, *where), trial_results.c.number)
        return out

    def _schedules(self, key: Key | None) -> list[Mapping[Any, Any]]:
        """Walk the schedule types through the index, then the trials without one."""
        c = trial_results.c
        out: list[Mapping[Any, Any]] = []
        if key is None or key[0] == 0:
            group = self._next_schedule(None) if key is None else str(key[1])
            while group is not None and len(out) < self.want:
                out += self._groups([group], c.schedule, key)
                group = self._next_schedule(group)
        if len(out) < self.want:
            where = [c.schedule.is_(None)]
            if key is not None and key[0] == 1:
                where.append(c.number > key[-1])
            out += self._fetch(self._query(self.states, *where), c.number)
        return out

    def _next_schedule(self, after: str | None) -> str | None:
        c = trial_results.c
        query = sa.select(c.schedule).where(
            c.study_id == self.record.study_id, c.schedule.is_not(None)
        )
        if after is not None:
            query = query.where(c.schedule < after if self.descending else c.schedule > after)
        way = c.schedule.desc() if self.descending else c.schedule.asc()
        found = self.conn.execute(query.order_by(way).limit(1)).scalar()
        return None if found is None else str(found)

    def _values(self, key: Key | None) -> list[Mapping[Any, Any]]:
        c = trial_results.c
        out: list[Mapping[Any, Any]] = []
        if key is None or key[0] == 0:
            where = [is_finite(c.value)]
            if key is not None:
                v, n = key[1], key[2]
                if self.descending:
                    where += [c.value <= v, sa.or_(c.value < v, c.number > n)]
                else:
                    where += [c.value >= v, sa.or_(c.value > v, c.number > n)]
            way = c.value.desc() if self.descending else c.value.asc()
            for state in self.states:
                out += self._fetch(self._query([state], *where), way, c.number)
        if len(out) < self.want:
            where = [not_finite(c.value)]
            if key is not None and key[0] == 1:
                where.append(c.number > key[-1])
            for state in self.states:
                out += self._fetch(self._query([state], *where), c.number)
        return out


def _before(group: str, at: str, descending: bool) -> bool:
    """Whether ``group`` comes before ``at`` in the listing."""
    return group > at if descending else group < at
