"""The analysis view, running trials, readable charts and the study note, in Chromium.

The charts are checked against the API and against storage itself (the best
value so far of every complete trial), the note against optuna-dashboard's
own reading function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna_dashboard import get_note

from lrsearch import storage
from tests.dashboard_tests.conftest import DashboardSite, enter_key, screenshot, wait_rendered
from tests.dashboard_tests.views_site import (
    BIG,
    EMPTY,
    RUNNING,
    ViewsSite,
    start_running,
    views_site,
)


@pytest.fixture(scope="module")
def vs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewsSite]:
    with views_site(tmp_path_factory.mktemp("views-analysis")) as served:
        yield served


def _open(page: Any, vs: ViewsSite, route: str, view: str, key: str = "read") -> None:
    page.goto(f"{vs.url}/#{route}")
    page.fill("#key-input", vs.keys[key])
    page.click("#key-form button[type=submit]")
    wait_rendered(page, view)


def _data(page: Any, chart: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = page.evaluate(
        f"""() => document.getElementById('{chart}').data.map((t) => ({{
            type: t.type, name: t.name, x: t.x && Array.from(t.x), y: t.y && Array.from(t.y)
        }}))"""
    )
    return data


def test_history_endpoint_has_every_improvement_and_bounded_samples(vs: ViewsSite) -> None:
    record = vs.record(BIG)
    study = optuna.load_study(study_name=record.optuna_name, storage=vs.backend.optuna_storage)
    best, steps = -math.inf, []
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None and t.value > best:
            best = t.value
            steps.append((t.number, t.value))
    body = vs.get(f"/studies/{BIG}/history", limit=2000).json()
    assert list(zip(body["best_numbers"], body["best_values"], strict=True)) == steps
    assert body["best_epochs"] == sorted(body["best_epochs"])
    small = vs.get(f"/studies/{BIG}/history", limit=10).json()
    assert len(small["numbers"]) <= 10
    assert small["total"] == body["total"] == len(body["numbers"])
    params = vs.get(f"/studies/{BIG}/params", schedule="step", limit=5).json()
    assert len(params["numbers"]) <= 5
    assert set(params["schedules"]) == {"step"}
    assert all(len(column) == len(params["numbers"]) for column in params["params"].values())
    bad = vs.get(f"/studies/{BIG}/params", schedule="linear", limit=0)
    assert bad.status_code == 422
    assert sorted(e["loc"][1] for e in bad.json()["errors"]) == ["limit", "schedule"]


@pytest.mark.browser
def test_analysis_view_draws_history_parallel_coordinates_and_slices(
    page: Any, vs: ViewsSite
) -> None:
    _open(page, vs, f"/study/{BIG}", "study")
    page.evaluate("() => { delete document.body.dataset.rendered; }")
    page.click("#study-analysis-link")
    wait_rendered(page, "analysis")
    history = vs.get(f"/studies/{BIG}/history", limit=2000).json()
    points, best = _data(page, "chart-history")
    assert points["x"] == history["numbers"]
    assert best["name"] == "best so far"
    assert best["y"][:-1] == history["best_values"]
    _, best_epochs = _data(page, "chart-history-epochs")
    assert best_epochs["x"][:-1] == history["best_epochs"]
    assert f"{history['total']} finished trials" in page.inner_text("#history-caption")

    params = vs.get(f"/studies/{BIG}/params", limit=2000).json()
    lines = page.evaluate(
        """() => document.getElementById('chart-parallel').data.flatMap((t) => {
            const runs = [[]];
            Array.from(t.customdata).forEach((n, i) =>
                n === null ? runs.push([]) : runs[runs.length - 1].push([n, t.y[i]]));
            return runs.filter((r) => r.length); })"""
    )
    labels = page.evaluate(
        "() => document.getElementById('chart-parallel').layout.annotations"
        ".filter((a) => a.yanchor === 'bottom').map((a) => a.text)"
    )
    assert labels[-1] == "val_accuracy"
    assert "learning_rate (log)" in labels
    assert "schedule" in labels
    # One line per sampled trial, across every axis, its objective placed on the last one.
    assert sorted(line[0][0] for line in lines) == sorted(params["numbers"])
    assert {len(line) for line in lines} == {len(labels)}
    lo, hi = min(params["values"]), max(params["values"])
    for line in lines:
        value = params["values"][params["numbers"].index(line[0][0])]
        assert math.isclose(line[-1][1], (value - lo) / (hi - lo), abs_tol=1e-9)
    assert f"{params['total']} complete trials" in page.inner_text("#parallel-caption")

    chosen = page.input_value("#slice-schedule")
    sliced = vs.get(f"/studies/{BIG}/params", schedule=chosen, limit=2000).json()
    own = sorted(p for p in sliced["params"] if p.startswith(f"{chosen}."))
    shown = page.eval_on_selector_all(
        "#slice-charts .chart", "(divs) => divs.map((d) => d.dataset.param)"
    )
    assert own
    assert set(own) <= set(shown)
    assert "learning_rate" in shown
    # Log axes are labelled by decade: 1e-4, 1e-3, ...
    ticks = page.eval_on_selector_all(
        "#slice-charts .chart[data-param=learning_rate] .xtick text",
        "(ts) => ts.map((t) => t.textContent)",
    )
    assert ticks
    assert all(re.fullmatch(r"1e[-\u2212]?\d+", t) for t in ticks), ticks
    screenshot(page, "dashboard-analysis")

    # Another schedule type: its own parameters.
    other = "cosine" if chosen != "cosine" else "step"
    page.select_option("#slice-schedule", other)
    page.wait_for_function(
        f"() => document.querySelector('#slice-charts .chart[data-param^=\"{other}.\"]')"
    )
    page.close()


@pytest.mark.browser
def test_a_study_without_a_completed_trial_says_so_instead_of_empty_charts(
    page: Any, vs: ViewsSite
) -> None:
    _open(page, vs, f"/study/{EMPTY}", "study")
    for chart in ("chart-lr", "chart-learning", "chart-scatter"):
        assert "No completed trial yet" in page.inner_text(f"#{chart}")
        assert page.locator(f"#{chart} .main-svg").count() == 0
    page.evaluate("() => { delete document.body.dataset.rendered; }")
    page.click("#study-analysis-link")
    wait_rendered(page, "analysis")
    for chart in ("chart-history", "chart-history-epochs", "chart-parallel"):
        assert "No completed trial yet" in page.inner_text(f"#{chart}")
    screenshot(page, "dashboard-analysis-empty")
    page.close()


@pytest.mark.browser
def test_running_trials_show_live_curves_worker_elapsed_time_and_pace(
    page: Any, vs: ViewsSite
) -> None:
    record = vs.record(RUNNING)
    running = start_running(vs.backend, record, 1)
    numbers = sorted(t.number for t, _ in running)
    _open(page, vs, f"/study/{RUNNING}", "study")
    assert page.is_visible("#running-box")
    rows = page.eval_on_selector_all(
        "#running-table tbody tr",
        """(trs) => trs.map((tr) => Object.fromEntries([...tr.cells].map((td) =>
            [td.dataset.field, td.textContent])))""",
    )
    assert sorted(int(r["number"].lstrip("#")) for r in rows) == numbers
    assert {r["worker"] for r in rows} == {"gpu-host-a:11", "gpu-host-b:12"}
    assert {r["epoch"] for r in rows} == {"1/3"}
    assert all(r["elapsed"].endswith((" s", " min")) for r in rows)
    traces = _data(page, "chart-running")
    assert sorted(int(t["name"].lstrip("#")) for t in traces) == numbers
    assert all(len(t["y"]) == 1 for t in traces)
    pace = page.inner_text("#study-pace")
    study = vs.get(f"/studies/{RUNNING}").json()
    assert pace.startswith(f"{study['epochs_spent']} epochs spent")
    assert "trials/h, ETA " in pace
    assert f"for {study['n_trials'] - study['finished']} trials" in pace

    # One more epoch of each: the chart follows within a refresh (3 s).
    for trial, _ in running:
        trial.report(0.5 + 0.01 * trial.number, 1)
    page.wait_for_function(
        "() => document.getElementById('chart-running').data.every((t) => t.y.length === 2)",
        timeout=10_000,
    )
    assert {
        r
        for r in page.eval_on_selector_all(
            "#running-table td[data-field=epoch]", "(tds) => tds.map((td) => td.textContent)"
        )
    } == {"2/3"}
    screenshot(page, "dashboard-study-running")
    page.close()


@pytest.mark.browser
def test_curves_of_one_schedule_type_get_distinct_shades(page: Any, site: DashboardSite) -> None:
    enter_key(page, site, site.keys["read"], f"/study/{site.studies['done']}")
    wait_rendered(page, "study")
    colours = page.evaluate(
        "() => document.getElementById('chart-lr').data.map((t) => [t.legendgroup, t.line.color])"
    )
    by_type: dict[str, list[str]] = {}
    for schedule, colour in colours:
        by_type.setdefault(schedule, []).append(colour)
    assert any(len(c) > 1 for c in by_type.values()), by_type
    for schedule, shades in by_type.items():
        assert len(set(shades)) == len(shades), (schedule, shades)
    everything = [c for shades in by_type.values() for c in shades]
    assert len(set(everything)) == len(everything)
    ticks = page.eval_on_selector_all(
        "#chart-lr .ytick text", "(ts) => ts.map((t) => t.textContent)"
    )
    assert ticks
    assert all(re.fullmatch(r"1e[-\u2212]?\d+", t) for t in ticks), ticks
    page.close()


NOTE = """# Findings

Cosine with **warm-up** wins; see [the run log](https://example.org/log) and `lr=0.03`.

- step: *too slow*
- <script>alert(1)</script> stays text
- [bad](javascript:alert(1)) is not a link
"""


def test_note_put_needs_submit_scope_and_rejects_bad_bodies(vs: ViewsSite) -> None:
    assert vs.put(f"/studies/{BIG}/note", {"body": "hi"}, key="read").status_code == 403
    too_big = vs.put(f"/studies/{BIG}/note", {"body": "\x07" + "x" * 70_000})
    assert too_big.status_code == 422
    messages = [e["msg"] for e in too_big.json()["errors"]]
    assert len(messages) == 2
    assert "at most 65536 characters" in messages[0]
    assert "U+0007" in messages[1]
    assert vs.put(f"/studies/{BIG}/note", {"body": "x", "extra": 1}).status_code == 422
    assert vs.get(f"/studies/{BIG}/note").json() == {"study": BIG, "body": "", "version": 0}


@pytest.mark.browser
def test_note_is_edited_rendered_safely_and_read_by_optuna_dashboard(
    page: Any, vs: ViewsSite, browser: Any
) -> None:
    # A read key sees the note but no edit button.
    _open(page, vs, f"/study/{RUNNING}", "study")
    assert not page.is_visible("#note-edit")
    assert page.inner_text("#study-note") == "No note yet."
    page.close()

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    alerts: list[str] = []
    tab.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    try:
        _open(tab, vs, f"/study/{RUNNING}", "study", key="submit")
        tab.click("#note-edit")
        tab.fill("#note-input", NOTE)
        tab.click("#note-form button[type=submit]")
        tab.wait_for_selector("#study-note h3")
        note = tab.locator("#study-note")
        assert note.locator("h3").inner_text() == "Findings"
        assert note.locator("strong").inner_text() == "warm-up"
        assert note.locator("code").inner_text() == "lr=0.03"
        assert note.locator("a").count() == 1
        assert note.locator("a").get_attribute("href") == "https://example.org/log"
        assert note.locator("li").count() == 3
        assert note.locator("script").count() == 0
        assert "<script>alert(1)</script> stays text" in note.inner_text()
        assert "[bad](javascript:alert(1))" in note.inner_text()
        screenshot(tab, "dashboard-study-note")
        # Stored where optuna-dashboard keeps its study note.
        record = vs.record(RUNNING)
        study = optuna.load_study(study_name=record.optuna_name, storage=vs.backend.optuna_storage)
        assert get_note(study) == NOTE
        # Shorter again: optuna-dashboard reads exactly the new text.
        tab.click("#note-edit")
        tab.fill("#note-input", "short")
        tab.click("#note-form button[type=submit]")
        tab.wait_for_function("() => document.getElementById('study-note').dataset.version === '2'")
        assert (
            get_note(
                optuna.load_study(study_name=record.optuna_name, storage=vs.backend.optuna_storage)
            )
            == "short"
        )
        assert alerts == []
    finally:
        context.close()


def test_a_long_note_is_split_in_optuna_dashboard_chunks(vs: ViewsSite) -> None:
    body = "".join(f"line {i}\n" for i in range(2000))  # ~16,000 characters: 8 chunks
    saved = vs.put(f"/studies/{EMPTY}/note", {"body": body})
    assert saved.status_code == 200, saved.text
    record = vs.record(EMPTY)
    study = optuna.load_study(study_name=record.optuna_name, storage=vs.backend.optuna_storage)
    assert get_note(study) == body
    assert vs.put(f"/studies/{EMPTY}/note", {"body": "again"}).json()["version"] == 2
    study = optuna.load_study(study_name=record.optuna_name, storage=vs.backend.optuna_storage)
    assert get_note(study) == "again"
    with vs.backend.engine.connect() as conn:
        assert storage.read_note(conn, record) == ("again", 2)
