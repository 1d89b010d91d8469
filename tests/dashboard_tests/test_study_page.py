"""The study page in headless Chromium: leaderboard, curves, live updates, controls."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest

from lrsearch import storage
from tests.dashboard_tests.conftest import (
    DashboardSite,
    enter_key,
    run_trials,
    screenshot,
    wait_rendered,
)

pytestmark = pytest.mark.browser

# The leaderboard's columns (data-field) and the field of GET /schedules each shows.
BEST_FIELDS = (
    "value",
    "learning_rate",
    "batch_size",
    "dropout",
    "weight_init",
    "warmup_epochs",
    "epochs_run",
    "number",
)
COUNT_FIELDS = ("n_complete", "n_pruned", "n_failed", "median_value")


def _leaderboard(tab: Any) -> list[dict[str, tuple[Any, str]]]:
    """Each row of the leaderboard as {field: (raw value, shown text)}."""
    rows: list[dict[str, tuple[Any, str]]] = tab.evaluate(
        """() => [...document.querySelectorAll('#leaderboard tbody tr')].map((tr) =>
            Object.fromEntries([...tr.cells].map((td) =>
                [td.dataset.field, [JSON.parse(td.dataset.raw), td.textContent.trim()]])))"""
    )
    return rows


def _shown_matches(expected: Any, text: str) -> bool:
    """Whether the cell's text shows ``expected`` (numbers rounded for display)."""
    if expected is None:
        return text == "—"
    if isinstance(expected, int | str):  # bool is an int
        return text.lstrip("#") == str(expected)
    shown = float(text)
    return math.isclose(shown, expected, rel_tol=5e-3, abs_tol=5e-4)


def _traces(tab: Any, chart: str) -> list[dict[str, Any]]:
    traces: list[dict[str, Any]] = tab.evaluate(
        f"""() => document.getElementById('{chart}').data.map((t) => ({{
            name: t.name, group: t.legendgroup, dash: t.line && t.line.dash,
            x: Array.from(t.x), y: Array.from(t.y)}}))"""
    )
    return traces


def test_leaderboard_shows_exactly_what_the_schedules_endpoint_returns(
    page: Any, site: DashboardSite
) -> None:
    name = site.studies["done"]
    enter_key(page, site, site.keys["read"], f"/study/{name}")
    wait_rendered(page, "study")
    expected = site.api(f"/studies/{name}/schedules")["items"]
    rows = _leaderboard(page)
    assert [r["schedule"][0] for r in rows] == [item["schedule"] for item in expected]
    assert len(expected) == 6
    for row, item in zip(rows, expected, strict=True):
        best = item["best"] or {}
        for field in BEST_FIELDS:
            raw, text = row[field]
            assert raw == best.get(field), (item["schedule"], field)
            assert _shown_matches(best.get(field), text), (item["schedule"], field, text)
        for field in COUNT_FIELDS:
            raw, text = row[field]
            assert raw == item[field], (item["schedule"], field)
            assert _shown_matches(item[field], text), (item["schedule"], field, text)
        if best:
            link = page.get_attribute(
                f"#leaderboard tr[data-schedule={item['schedule']}] td[data-field=number] a",
                "href",
            )
            assert link == f"#/study/{name}/trial/{best['number']}"
    # A read key sees no controls.
    assert page.locator("#study-controls button:visible").count() == 0
    screenshot(page, "dashboard-study")


def test_curve_charts_have_one_trace_per_expected_trial(page: Any, site: DashboardSite) -> None:
    name = site.studies["done"]
    record = storage.get_study(site.backend, name)
    with site.backend.engine.connect() as conn:
        top = storage.top_trials_per_schedule(conn, record, k=3)
    top_numbers = sorted(row.number for rows in top.values() for row in rows)
    pruned = [
        t["number"] for t in site.api(f"/studies/{name}/trials?state=PRUNED&limit=1000")["items"]
    ]
    recent_pruned = sorted(pruned)[-10:]
    assert top_numbers, "the study needs complete trials"
    assert recent_pruned, "the study needs pruned trials"

    enter_key(page, site, site.keys["read"], f"/study/{name}")
    wait_rendered(page, "study")

    lr_traces = _traces(page, "chart-lr")
    assert sorted(int(t["name"].lstrip("#")) for t in lr_traces) == top_numbers
    for trace in lr_traces:
        detail = site.api(f"/studies/{name}/trials/{trace['name'].lstrip('#')}")
        assert trace["y"] == detail["lr_curve"]
        assert trace["group"] == detail["schedule"]

    learning = _traces(page, "chart-learning")
    assert len(learning) == len(top_numbers) + len(recent_pruned)
    solid = sorted(int(t["name"].lstrip("#")) for t in learning if t["dash"] == "solid")
    dashed = sorted(int(t["name"].split()[0].lstrip("#")) for t in learning if t["dash"] == "dash")
    assert solid == top_numbers
    assert dashed == recent_pruned
    assert all(t["name"].endswith(" pruned") for t in learning if t["dash"] == "dash")
    for trace in learning:
        number = trace["name"].split()[0].lstrip("#")
        detail = site.api(f"/studies/{name}/trials/{number}")
        values = detail["intermediate_values"]
        assert trace["x"] == [int(k) for k in values]
        assert trace["y"] == list(values.values())

    # 12 trials, below service.importance.MIN_RELIABLE_TRIALS: the warning, not bars.
    warning = site.api(f"/studies/{name}/importance")["warning"]
    assert warning
    assert warning in page.inner_text("#chart-importance")
    assert page.evaluate("() => document.getElementById('chart-importance').data") is None
    scatter = page.evaluate(
        "() => document.getElementById('chart-scatter').data.reduce((n, t) => n + t.x.length, 0)"
    )
    counts = site.api(f"/studies/{name}")["counts"]
    assert scatter == counts["COMPLETE"] + counts["PRUNED"]


def test_a_running_study_updates_without_a_reload(page: Any, site: DashboardSite) -> None:
    name = site.studies["live"]
    enter_key(page, site, site.keys["submit"], f"/study/{name}")
    wait_rendered(page, "study")
    before = int(page.get_attribute("#study-progress", "data-finished") or "-1")
    board_before = _leaderboard(page)
    # A submit key sees the controls that apply to a running study.
    assert page.locator("#study-controls button:visible").all_inner_texts() == ["Pause", "Cancel"]
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("() => { window.__sameDocument = true; }")

    worker = threading.Thread(target=run_trials, args=(site.storage_url, name, 3))
    worker.start()
    try:
        page.wait_for_function(
            "(n) => Number(document.querySelector('#study-progress').dataset.finished) >= n",
            arg=before + 3,
            timeout=60_000,
        )
        page.wait_for_selector("body[data-updates]")
    finally:
        worker.join(timeout=120)
    assert not worker.is_alive()
    cells = ", ".join(
        f"#leaderboard td[data-field={f}]" for f in ("n_complete", "n_pruned", "n_failed")
    )
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('{cells}')]
                 .reduce((n, td) => n + JSON.parse(td.dataset.raw), 0) >= {before + 3}"""
    )
    assert page.evaluate("() => window.__sameDocument") is True
    assert navigations == []
    assert _leaderboard(page) != board_before
    expected = site.api(f"/studies/{name}/schedules")["items"]
    assert [json.dumps(r["n_complete"][0]) for r in _leaderboard(page)] == [
        json.dumps(i["n_complete"]) for i in expected
    ]
    screenshot(page, "dashboard-study-live")


def test_controls_pause_and_resume_with_a_submit_key(page: Any, site: DashboardSite) -> None:
    name = site.studies["idle"]
    enter_key(page, site, site.keys["submit"], f"/study/{name}")
    wait_rendered(page, "study")
    # No completed trial yet: importance explains itself instead of drawing.
    assert "Not enough finished trials" in page.inner_text("#chart-importance")
    page.click("#study-controls button[data-action=pause]")
    page.wait_for_selector("#study-state.paused")
    assert page.locator("#study-controls button:visible").all_inner_texts() == [
        "Resume",
        "Cancel",
    ]
    assert storage.get_study(site.backend, name).state == "paused"
    page.click("#study-controls button[data-action=resume]")
    page.wait_for_selector("#study-state.running")
    assert storage.get_study(site.backend, name).state == "running"
