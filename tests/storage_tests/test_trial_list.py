"""Sorted, filtered keyset pages of trials (storage.list_trial_page), SQLite and PostgreSQL.

Every sort and order, with and without state and schedule filters, walks
each matching trial exactly once, in the order the same trials take when
sorted in Python; running and waiting trials (read outside the summary
table) merge into the right places.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from lrsearch import storage
from lrsearch.storage import Backend, InvalidCursorError, TrialRow
from tests.storage_tests.helpers import Played


def _all(backend: Backend, played: Played) -> list[TrialRow]:
    with backend.engine.connect() as conn:
        rows, cursor = storage.list_trials(conn, played.record, limit=1000)
    assert cursor is None
    return rows


def _walk(backend: Backend, played: Played, limit: int, **kwargs: Any) -> list[TrialRow]:
    seen: list[TrialRow] = []
    cursor: str | None = None
    with backend.engine.connect() as conn:
        for _ in range(1000):
            page, cursor = storage.list_trial_page(
                conn, played.record, cursor=cursor, limit=limit, **kwargs
            )
            assert len(page) <= limit
            seen += page
            if cursor is None:
                return seen
            assert len(page) == limit
    raise AssertionError("pagination did not end")


def _expected(rows: Sequence[TrialRow], sort: str, descending: bool) -> list[int]:
    def cmp(a: TrialRow, b: TrialRow) -> int:
        def c(x: Any, y: Any) -> int:
            return int(x > y) - int(x < y)

        sign = -1 if descending else 1
        if sort == "number":
            return sign * c(a.number, b.number)
        if sort == "state":
            return sign * c(a.state, b.state) or c(a.number, b.number)
        x, y = getattr(a, sort), getattr(b, sort)
        if (x is None) != (y is None):
            return 1 if x is None else -1
        if x is not None and x != y:
            return sign * c(x, y)
        return c(a.number, b.number)

    return [r.number for r in sorted(rows, key=functools.cmp_to_key(cmp))]


@pytest.mark.parametrize(
    ("sort", "order"),
    list(itertools.product(("number", "value", "state", "schedule"), ("asc", "desc"))),
)
@pytest.mark.parametrize("limit", [1, 4])
def test_every_sort_walks_each_trial_once_in_order(
    backend: Backend, main_study: Played, sort: str, order: str, limit: int
) -> None:
    everything = _all(backend, main_study)
    assert {"RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL"} <= {r.state for r in everything}
    cases: list[dict[str, Any]] = [
        {},
        {"states": ["COMPLETE", "RUNNING"]},
        {"schedules": ["cosine", "exponential"]},
        {"states": ["WAITING", "FAIL"], "schedules": ["step", "cyclic"]},
    ]
    for filters in cases:
        subset = [
            r
            for r in everything
            if r.state in filters.get("states", [r.state])
            and r.schedule in filters.get("schedules", [r.schedule])
        ]
        walked = _walk(backend, main_study, limit, sort=sort, order=order, **filters)
        assert [r.number for r in walked] == _expected(subset, sort, order == "desc"), filters


def test_value_defaults_to_best_first_for_either_direction(
    backend: Backend, main_study: Played, min_study: Played
) -> None:
    for played, best_order in ((main_study, "desc"), (min_study, "asc")):
        default = [r.number for r in _walk(backend, played, 3, sort="value")]
        explicit = [r.number for r in _walk(backend, played, 3, sort="value", order=best_order)]
        assert default == explicit
        legacy = [r.number for r in _all_by_value(backend, played)]
        assert default == legacy


def _all_by_value(backend: Backend, played: Played) -> list[TrialRow]:
    with backend.engine.connect() as conn:
        rows, _ = storage.list_trials(conn, played.record, order="value", limit=1000)
    return rows


def test_a_cursor_belongs_to_its_study_sort_and_order(
    backend: Backend, main_study: Played, min_study: Played
) -> None:
    with backend.engine.connect() as conn:
        _, cursor = storage.list_trial_page(conn, main_study.record, sort="schedule", limit=2)
        assert cursor is not None
        for record, sort, order in (
            (main_study.record, "schedule", "desc"),
            (main_study.record, "state", "asc"),
            (min_study.record, "schedule", "asc"),
        ):
            with pytest.raises(InvalidCursorError):
                storage.list_trial_page(conn, record, sort=sort, order=order, cursor=cursor)  # type: ignore[arg-type]
        for bad in ("", "x", "eyJzIjoxfQ"):
            with pytest.raises(InvalidCursorError):
                storage.list_trial_page(conn, main_study.record, cursor=bad)
