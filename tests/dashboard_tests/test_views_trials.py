"""All trials of a study: the REST list's sorts and filters, and the table in Chromium.

The REST checks walk every page of every sort, order and filter and compare
with the same trials sorted in Python; the browser checks the table against
the API, sorting by clicking headings, filtering and paging with the cursor.
Failures are visible in the studies list (a count) and on the study page
(count and most common error).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_tests.conftest import screenshot, wait_rendered
from tests.dashboard_tests.views_site import BIG, OTHER_ERROR, OUTCOMES, ViewsSite, views_site


@pytest.fixture(scope="module")
def vs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewsSite]:
    with views_site(tmp_path_factory.mktemp("views-trials")) as served:
        yield served


def _walk(vs: ViewsSite, limit: int = 7, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = vs.get(f"/studies/{BIG}/trials", **query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the listing did not end")


def _expected(all_items: list[dict[str, Any]], sort: str, order: str) -> list[int]:
    desc = order == "desc"

    def key(t: dict[str, Any]) -> tuple[Any, ...]:
        if sort == "number":
            return (-t["number"] if desc else t["number"],)
        if sort == "state":
            return (t["state"], t["number"])
        field = t[sort]
        if field is None:
            return (1, 0, t["number"])
        return (0, field, t["number"])

    if sort == "state":
        items = sorted(all_items, key=lambda t: t["number"])
        items = sorted(items, key=lambda t: t["state"], reverse=desc)
    elif sort in ("value", "schedule"):
        present = [t for t in all_items if t[sort] is not None]
        present = sorted(present, key=lambda t: t["number"])
        present = sorted(present, key=lambda t: t[sort], reverse=desc)
        missing = sorted((t for t in all_items if t[sort] is None), key=lambda t: t["number"])
        items = present + missing
    else:
        items = sorted(all_items, key=key)
    return [t["number"] for t in items]


@pytest.mark.parametrize(
    ("sort", "order"),
    list(itertools.product(("number", "value", "state", "schedule"), ("asc", "desc"))),
)
def test_every_sort_and_order_walks_each_trial_once_in_order(
    vs: ViewsSite, sort: str, order: str
) -> None:
    everything = _walk(vs, limit=1000)
    assert len(everything) == len(OUTCOMES)
    for filters in ({}, {"state": ["COMPLETE", "FAIL"]}, {"schedule": ["step", "cosine"]}):
        walked = _walk(vs, sort=sort, order=order, **filters)
        subset = [
            t
            for t in everything
            if t["state"] in filters.get("state", [t["state"]])
            and t["schedule"] in filters.get("schedule", [t["schedule"]])
        ]
        assert subset, filters
        assert [t["number"] for t in walked] == _expected(subset, sort, order), filters


def test_default_value_order_is_best_first_and_the_legacy_order_still_works(
    vs: ViewsSite,
) -> None:
    best_first = [t["number"] for t in _walk(vs, sort="value")]
    assert best_first == [t["number"] for t in _walk(vs, sort="value", order="desc")]
    assert best_first == [t["number"] for t in _walk(vs, order="value")]  # maximize


def test_bad_list_parameters_are_one_422_listing_every_problem(vs: ViewsSite) -> None:
    response = vs.get(
        f"/studies/{BIG}/trials", sort="colour", order="sideways", schedule="linear", limit=0
    )
    assert response.status_code == 422, response.text
    locs = sorted(tuple(e["loc"]) for e in response.json()["errors"])
    assert [loc[:2] for loc in locs] == [
        ("query", "limit"),
        ("query", "order"),
        ("query", "schedule"),
        ("query", "sort"),
    ]
    conflict = vs.get(f"/studies/{BIG}/trials", sort="state", order="value")
    assert conflict.status_code == 422
    assert conflict.json()["errors"][0]["loc"] == ["query", "order"]
    first = vs.get(f"/studies/{BIG}/trials", sort="value", limit=3).json()
    reused = vs.get(f"/studies/{BIG}/trials", sort="state", limit=3, cursor=first["next_cursor"])
    assert reused.status_code == 422  # a cursor belongs to its sort and order


@pytest.mark.browser
def test_all_trials_table_sorts_filters_and_pages(page: Any, vs: ViewsSite) -> None:
    page.goto(f"{vs.url}/#/study/{BIG}")
    page.fill("#key-input", vs.keys["read"])
    page.click("#key-form button[type=submit]")
    wait_rendered(page, "study")
    page.click("#study-trials-link")
    wait_rendered(page, "trials")

    def shown() -> list[int]:
        page.wait_for_function("() => document.body.dataset.rendered === 'trials'")
        numbers: list[int] = page.evaluate(
            "() => [...document.querySelectorAll('#all-trials tbody tr')]"
            ".map((tr) => Number(tr.dataset.number))"
        )
        return numbers

    def rerender(action: Any) -> list[int]:
        page.evaluate("() => { delete document.body.dataset.rendered; }")
        action()
        return shown()

    api_first = [t["number"] for t in vs.get(f"/studies/{BIG}/trials", limit=50).json()["items"]]
    assert shown() == api_first
    # Paging: next then previous, with the REST cursor.
    second = rerender(lambda: page.click("#trials-next"))
    assert second == list(range(50, len(OUTCOMES)))
    assert page.is_disabled("#trials-next")
    assert rerender(lambda: page.click("#trials-prev")) == api_first
    assert page.is_disabled("#trials-prev")

    # Sorting: value best first (maximize), then reversed.
    by_value = rerender(lambda: page.click("#all-trials th[data-sort=value]"))
    expected = [t["number"] for t in _walk(vs, limit=1000, sort="value", order="desc")]
    assert by_value == expected[:50]
    assert page.get_attribute("#all-trials th[data-sort=value]", "aria-sort") == "descending"
    reverse = rerender(lambda: page.click("#all-trials th[data-sort=value]"))
    assert reverse == [t["number"] for t in _walk(vs, limit=1000, sort="value", order="asc")][:50]

    # Filters: failed trials show their (short) error; one schedule type only.
    failed = rerender(lambda: page.select_option("#trials-filter-state", "FAIL"))
    api_failed = _walk(vs, limit=1000, state="FAIL")
    assert sorted(failed) == sorted(t["number"] for t in api_failed)
    errors = page.eval_on_selector_all(
        "#all-trials td[data-field=error]", "(tds) => tds.map((td) => td.title)"
    )
    assert OTHER_ERROR in errors
    assert "diverged: loss is nan" in errors
    assert page.locator("#all-trials tr[data-state=FAIL] .badge").first.inner_text() == "FAIL"
    screenshot(page, "dashboard-all-trials-failed")
    rerender(lambda: page.select_option("#trials-filter-state", ""))
    step = rerender(lambda: page.select_option("#trials-filter-schedule", "step"))
    # Still sorted by value, ascending (the last click above).
    api_step = _walk(vs, limit=1000, schedule="step", sort="value", order="asc")
    assert step == [t["number"] for t in api_step][:50]
    assert step
    schedules = page.eval_on_selector_all(
        "#all-trials td[data-field=schedule]", "(tds) => tds.map((td) => td.textContent)"
    )
    assert set(schedules) == {"step"}
    # Numeric cells are right-aligned with tabular figures.
    align = page.eval_on_selector(
        "#all-trials td[data-field=value]",
        "(td) => [getComputedStyle(td).textAlign, getComputedStyle(td).fontVariantNumeric]",
    )
    assert align == ["right", "tabular-nums"]
    # A row links to its trial page.
    page.click(f"#all-trials tr[data-number='{step[0]}'] td[data-field=number] a")
    wait_rendered(page, "trial")
    assert page.url.endswith(f"#/study/{BIG}/trial/{step[0]}")
    page.close()


@pytest.mark.browser
def test_failures_show_in_the_studies_list_and_on_the_study_page(
    page: Any, vs: ViewsSite, tmp_path: Path
) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{vs.url}/#/")
    page.fill("#key-input", vs.keys["read"])
    page.click("#key-form button[type=submit]")
    wait_rendered(page, "studies")
    n_failed = OUTCOMES.count("FAIL")
    row = page.locator(f"#studies-table tr[data-study={BIG}]")
    assert row.locator("td[data-field=failed]").inner_text() == str(n_failed)
    empty = page.locator("#studies-table tr[data-study=views-empty]")
    assert empty.locator("td[data-field=failed]").inner_text() == "0"
    screenshot(page, "dashboard-studies-failed")
    api_paths = [u.split("/api/v1", 1)[1] for u in requests if "/api/v1/" in u]
    assert not [p for p in api_paths if p.startswith("/studies/")], api_paths  # one request

    page.click(f"#studies-table tr[data-study={BIG}] a")
    wait_rendered(page, "study")
    line = page.locator("#study-failures")
    assert line.locator("[data-field=failed]").inner_text() == f"{n_failed} failed"
    assert line.locator("[data-field=top-error]").inner_text() == "diverged: loss is nan"
    assert f"\N{MULTIPLICATION SIGN} {n_failed - 1}" in line.inner_text()
    summary = vs.get(f"/studies/{BIG}/failures").json()
    assert summary["failed"] == n_failed
    assert [(e["message"], e["count"]) for e in summary["errors"]] == [
        ("diverged: loss is nan", n_failed - 1),
        (OTHER_ERROR, 1),
    ]
    screenshot(page, "dashboard-study-failures")
    page.close()
