"""The dashboard's views of schedule knowledge, in headless Chromium.

Each winner's PyTorch scheduler on the leaderboard (and in the demo's table),
an ``auto`` study's LR range-test curve, and the "best schedules for a task"
page. The studies live in a storage of their own (so that the shared
``site``'s list of studies stays as its tests expect): real trials of the
``synthetic`` task run by the real worker, the ``auto`` study's range test
included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from lrsearch import storage
from lrsearch.cli.worker_cmds import best_schedules_table
from lrsearch.search_space import parse_definition
from lrsearch.service import Settings
from tests.dashboard_tests.conftest import (
    DashboardSite,
    dashboard_app,
    enter_key,
    fixed_params,
    run_trials,
    screenshot,
    serving,
    wait_rendered,
)

pytestmark = pytest.mark.browser

TASK = "synthetic"
EMPTY_TASK = "digits-mlp"  # no study of this task in this storage
STUDIES = {"a": "know-a", "b": "know-b", "min": "know-min", "auto": "know-auto"}


@dataclass(frozen=True)
class Knowledge:
    site: DashboardSite
    studies: dict[str, str]


def _definition(name: str, n_trials: int, **fields: Any) -> Any:
    return parse_definition(
        {
            "name": name,
            "task": TASK,
            "budget": {"n_trials": n_trials, "max_epochs": 3},
            "sampler": {"type": "random", "seed": 7},
            "pruner": {"type": "none"},
            **fields,
        }
    )


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knowledge]:
    url = f"sqlite:///{tmp_path_factory.mktemp('knowledge') / 'knowledge.db'}"
    backend = storage.open_backend(url)
    definitions = [
        _definition(STUDIES["a"], 8),
        _definition(STUDIES["b"], 6),
        _definition(STUDIES["min"], 4, objective={"metric": "val_loss", "direction": "minimize"}),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads cost more than they save
    try:
        for definition in definitions:
            record = storage.create_study(backend, definition)
            study = storage.load_optuna_study(backend, record)
            for params in fixed_params(definition):
                storage.enqueue_fixed(backend, study, record, params)
            run_trials(url, definition.name, None)
        # The worker runs the range test before the first trial of an `auto` study.
        storage.create_study(
            backend, _definition(STUDIES["auto"], 2, search_space={"learning_rate": "auto"})
        )
        run_trials(url, STUDIES["auto"], None)
    finally:
        torch.set_num_threads(threads)
    keys = {"read": storage.create_key(backend, scope="read")[1]}
    try:
        with serving(dashboard_app(Settings(storage=url))) as served:
            site = DashboardSite(
                url=served, storage_url=url, backend=backend, studies=STUDIES, keys=keys
            )
            yield Knowledge(site=site, studies=STUDIES)
    finally:
        backend.dispose()


def _open(page: Any, k: Knowledge, route: str, view: str) -> None:
    enter_key(page, k.site, k.site.keys["read"], route)
    wait_rendered(page, view)


def _call_text(settings: dict[str, Any]) -> str:
    """How `lrsearch best` writes a winner's scheduler (warm-up first)."""
    return (
        f"{settings['warmup']} then {settings['call']}" if settings["warmup"] else settings["call"]
    )


def test_leaderboard_shows_each_winners_pytorch_settings(page: Any, knowledge: Knowledge) -> None:
    name = knowledge.studies["a"]
    _open(page, knowledge, f"/study/{name}", "study")
    expected = knowledge.site.api(f"/studies/{name}/schedules")["items"]
    rows: list[dict[str, Any]] = page.evaluate(
        """() => [...document.querySelectorAll('#leaderboard tbody tr')].map((tr) => {
            const td = tr.querySelector('td[data-field=settings]');
            const call = td.querySelector('code.call');
            const warmup = td.querySelector('.warmup');
            return {schedule: tr.dataset.schedule, raw: JSON.parse(td.dataset.raw),
                call: call && call.textContent, warmup: warmup && warmup.textContent,
                text: td.textContent.trim(),
                epochs: tr.querySelector('td[data-field=epochs_run]').textContent,
                wraps: call && getComputedStyle(call).whiteSpace};
        })"""
    )
    assert [r["schedule"] for r in rows] == [item["schedule"] for item in expected]
    with_settings = [item for item in expected if item["settings"]]
    assert with_settings, "no winner with settings: the test would check nothing"
    for row, item in zip(rows, expected, strict=True):
        settings = item["settings"]
        assert row["raw"] == settings, item["schedule"]
        if settings is None:
            assert row["text"] == "—"
            continue
        assert row["call"] == settings["call"], item["schedule"]
        assert row["wraps"] == "normal"  # a long call wraps instead of widening the table
        if settings["warmup"]:
            assert row["warmup"] is not None
            assert settings["warmup"] in row["warmup"]
        else:
            assert row["warmup"] is None
        assert row["epochs"] == str(item["epochs_trained"])


def test_demo_table_shows_the_same_settings_as_the_api(knowledge: Knowledge) -> None:
    name = knowledge.studies["a"]
    record = storage.get_study(knowledge.site.backend, name)
    table = best_schedules_table(knowledge.site.backend, record).splitlines()
    assert "PyTorch" in table[1]
    rows = {line.split()[0]: line for line in table[3:]}
    expected = knowledge.site.api(f"/studies/{name}/schedules")["items"]
    assert set(rows) == {item["schedule"] for item in expected}
    for item in expected:
        if item["best"] is not None:
            assert rows[item["schedule"]].endswith("  " + _call_text(item["settings"]))


def _js_exponential(x: float) -> str:
    """``x.toExponential(2)`` as JavaScript writes it: ``2.10e-2``, ``3.50e+0``."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent):+d}"


def _lr_range_chart(page: Any) -> dict[str, Any]:
    chart: dict[str, Any] = page.evaluate(
        """() => {
            const div = document.getElementById('chart-lr-range');
            if (!div.data) return {drawn: false};
            return {drawn: true,
                traces: div.data.map((t) =>
                    ({meta: t.meta, x: Array.from(t.x), y: Array.from(t.y)})),
                shapes: (div.layout.shapes || []).map((s) => ({type: s.type, x0: s.x0, x1: s.x1})),
                xaxis: {type: div.layout.xaxis.type, dtick: div.layout.xaxis.dtick},
                ticks: [...div.querySelectorAll('.xtick text')].map((t) => t.textContent)};
        }"""
    )
    return chart


def test_auto_study_shows_the_range_test_curve_and_bounds(page: Any, knowledge: Knowledge) -> None:
    name = knowledge.studies["auto"]
    _open(page, knowledge, f"/study/{name}", "study")
    lr_range = knowledge.site.api(f"/studies/{name}")["lr_range"]
    assert lr_range is not None
    assert lr_range["lrs"]
    assert page.is_visible("#lr-range-box")
    chart = _lr_range_chart(page)
    assert chart["drawn"]
    by_meta = {t["meta"]: t for t in chart["traces"]}
    assert set(by_meta) == {"curve", "low", "high"}
    assert by_meta["curve"]["x"] == lr_range["lrs"]
    assert by_meta["curve"]["y"] == lr_range["losses"]
    # The two bounds: vertical lines at the stored low and high, the range between shaded.
    assert set(by_meta["low"]["x"]) == {lr_range["low"]}
    assert set(by_meta["high"]["x"]) == {lr_range["high"]}
    assert [(s["type"], s["x0"], s["x1"]) for s in chart["shapes"]] == [
        ("rect", lr_range["low"], lr_range["high"])
    ]
    # A log axis labelled by decade: one tick per power of ten the curve spans.
    assert chart["xaxis"] == {"type": "log", "dtick": 1}
    decades = math.floor(math.log10(max(lr_range["lrs"]))) - math.ceil(
        math.log10(min(lr_range["lrs"]))
    )
    assert len(chart["ticks"]) >= decades + 1
    # Powers of ten: "1", "10", "10-3" (the exponent is a superscript between zero-width
    # spaces; plotly's minus sign is U+2212).
    power = re.compile("1|10|10[\u2212-]?\\d+")
    ticks = [t.replace("\u200b", "") for t in chart["ticks"]]
    assert all(power.fullmatch(t) for t in ticks), ticks
    caption = page.inner_text("#lr-range-caption")
    assert _js_exponential(lr_range["low"]) in caption
    assert _js_exponential(lr_range["high"]) in caption
    page.locator("#lr-range-box").scroll_into_view_if_needed()
    screenshot(page, "dashboard-lr-range")


def test_other_studies_show_no_range_test_chart(page: Any, knowledge: Knowledge) -> None:
    # First an auto study, then a normal one: its chart must not linger.
    _open(page, knowledge, f"/study/{knowledge.studies['auto']}", "study")
    assert page.is_visible("#lr-range-box")
    name = knowledge.studies["a"]
    page.goto(knowledge.site.page_url(f"/study/{name}"))
    wait_rendered(page, "study")
    assert knowledge.site.api(f"/studies/{name}")["lr_range"] is None
    assert page.is_hidden("#lr-range-box")
    assert not _lr_range_chart(page)["drawn"]


def _task_rows(page: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = page.evaluate(
        """() => [...document.querySelectorAll('#task-best tbody tr')].map((tr) => {
            const field = (f) => tr.querySelector(`td[data-field=${f}]`);
            const call = field('settings').querySelector('code.call');
            return {direction: tr.dataset.direction, schedule: tr.dataset.schedule,
                rank: Number(tr.dataset.rank), study: field('study').textContent,
                study_href: field('study').querySelector('a').getAttribute('href'),
                trial_href: field('number').querySelector('a').getAttribute('href'),
                value: JSON.parse(field('value').dataset.raw),
                epochs: field('epochs_trained').textContent,
                call: call && call.textContent};
        })"""
    )
    return rows


def test_task_page_lists_the_best_schedules_across_studies(page: Any, knowledge: Knowledge) -> None:
    # Reached from the studies list, by the task's name.
    _open(page, knowledge, "/", "studies")
    page.click(f"#studies-table tr[data-study={knowledge.studies['a']}] td[data-field=task] a")
    wait_rendered(page, "task")
    body = knowledge.site.api(f"/schedules/best?task={TASK}&top=3")
    expected = [
        {
            "direction": group["direction"],
            "schedule": group["schedule"],
            "rank": rank,
            "study": t["study"],
            "study_href": f"#/study/{t['study']}",
            "trial_href": f"#/study/{t['study']}/trial/{t['number']}",
            "value": t["value"],
            "epochs": f"{t['epochs_trained']}/{t['max_epochs']}",
            "call": t["settings"] and t["settings"]["call"],
        }
        for group in body["items"]
        for rank, t in enumerate(group["trials"])
    ]
    # Both directions and more than one study: the page shows groups, not one list.
    assert {e["direction"] for e in expected} == {"maximize", "minimize"}
    assert len({e["study"] for e in expected}) > 2
    assert _task_rows(page) == expected
    assert page.locator("#task-best section h2").all_inner_texts() == [
        "Studies that maximize their metric",
        "Studies that minimize their metric",
    ]
    assert page.is_hidden("#task-empty")
    screenshot(page, "dashboard-task-best")
    # Each study links to its page.
    first = expected[0]
    page.click("#task-best tr[data-rank='0'] td[data-field=study] a >> nth=0")
    wait_rendered(page, "study")
    assert page.inner_text("#study-name") == first["study"]


def test_study_page_links_to_its_task(page: Any, knowledge: Knowledge) -> None:
    _open(page, knowledge, f"/study/{knowledge.studies['min']}", "study")
    page.click("#study-facts a[data-field=task]")
    wait_rendered(page, "task")
    assert page.url.endswith(f"#/task/{TASK}")
    assert page.locator("#task-best tbody tr").count() > 0


def test_task_without_complete_trials_says_so(page: Any, knowledge: Knowledge) -> None:
    assert knowledge.site.api(f"/schedules/best?task={EMPTY_TASK}")["items"] == []
    _open(page, knowledge, f"/task/{EMPTY_TASK}", "task")
    assert page.inner_text("#task-empty") == (
        f"No completed trial in any of your studies of task {EMPTY_TASK} yet."
    )
    assert page.locator("#task-best table").count() == 0
