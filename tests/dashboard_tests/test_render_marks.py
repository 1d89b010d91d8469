"""The pages' two marks in headless Chromium: text and tables first, charts after.

plotly.js is held back by the browser (a Playwright route that answers only when
the test says so): the study page's header, leaderboard and note must be drawn
without it (``data-content``, ``window.__lrsearchContent``), and the charts, with
``data-rendered`` and ``window.__lrsearchRendered``, only once it comes. A page
without charts asks for it only once it is drawn, in the browser's idle time.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard_tests.conftest import DashboardSite, enter_key

pytestmark = pytest.mark.browser

PLOTLY = "**/static/vendor/plotly.min.js"
STUDY_CHARTS = ("chart-lr", "chart-learning", "chart-scatter")
CHARTS_MS = 60_000  # plotly.js starts only once released: slow on a loaded machine


def wait_rendered(tab: Any, view: str) -> None:
    tab.wait_for_selector(f"body[data-rendered={view}]", timeout=CHARTS_MS)


class PlotlyGate:
    """Records every request the tab makes for plotly.js and keeps each one unanswered
    until ``release()``; after that they go through at once."""

    def __init__(self, tab: Any) -> None:
        self.asked: list[str] = []
        self._held: list[Any] = []
        self._open = False
        tab.route(PLOTLY, self._handle)

    def _handle(self, route: Any) -> None:
        self.asked.append(route.request.url)
        if self._open:
            route.continue_()
        else:
            self._held.append(route)

    def release(self) -> None:
        self._open = True
        for route in self._held:
            route.continue_()
        self._held.clear()


def _traces(tab: Any, chart: str) -> int:
    count: int = tab.evaluate(f"() => (document.getElementById('{chart}').data || []).length")
    return count


def test_study_text_and_tables_come_before_plotly_and_charts_after(
    page: Any, site: DashboardSite
) -> None:
    name = site.studies["done"]
    gate = PlotlyGate(page)
    enter_key(page, site, site.keys["read"], f"/study/{name}")
    page.wait_for_selector("body[data-content=study]")
    # Drawn while plotly.js is still held: the leaderboard, the header and the note.
    schedules = site.api(f"/studies/{name}/schedules")["items"]
    study = site.api(f"/studies/{name}")
    assert page.locator("#leaderboard tbody tr").count() == len(schedules) == 6
    progress = f"{study['finished']}/{study['n_trials']} finished"
    assert page.inner_text("#study-progress").startswith(progress)
    assert page.locator("#study-note > *").count() > 0
    assert page.evaluate("() => typeof window.Plotly") == "undefined"
    assert page.evaluate("() => document.body.dataset.rendered") is None
    assert all(_traces(page, chart) == 0 for chart in STUDY_CHARTS)
    page.wait_for_function("() => window.__lrsearchTimings.plotlyAsked")
    assert gate.asked, "the page never asked for plotly.js"

    gate.release()
    wait_rendered(page, "study")
    content, rendered = page.evaluate("() => [window.__lrsearchContent, window.__lrsearchRendered]")
    assert 0 < content <= rendered
    for chart in STUDY_CHARTS:
        assert _traces(page, chart) > 0, chart
    assert page.locator("#chart-lr .main-svg").count() > 0  # on screen, not only data
    # 12 complete trials: the importance warning, written in the chart's place.
    assert site.api(f"/studies/{name}/importance")["warning"] in page.inner_text(
        "#chart-importance"
    )


def test_charts_mark_waits_for_plotly_and_never_comes_without_it(
    page: Any, site: DashboardSite
) -> None:
    name = site.studies["done"]
    gate = PlotlyGate(page)
    enter_key(page, site, site.keys["read"], f"/study/{name}")
    page.wait_for_selector("body[data-content=study]")
    page.wait_for_timeout(1500)  # plenty for the rest of the answers to come in
    assert page.evaluate("() => window.__lrsearchRendered") is None
    assert page.evaluate("() => document.body.dataset.rendered") is None
    gate.release()
    wait_rendered(page, "study")


def test_plotly_waits_until_a_page_without_charts_is_drawn(page: Any, site: DashboardSite) -> None:
    gate = PlotlyGate(page)
    page.add_init_script(f"localStorage.setItem('lrsearch.apiKey', {site.keys['read']!r})")
    page.goto(site.page_url("/"))
    wait_rendered(page, "studies")
    drawn = page.evaluate("() => window.__lrsearchRendered")
    assert page.evaluate("() => document.body.dataset.content") == "studies"
    # Then, in the browser's idle time, plotly.js for the next page's charts.
    page.wait_for_selector("script[src$='plotly.min.js']", state="attached")
    gate.release()
    page.wait_for_function("() => window.Plotly", timeout=CHARTS_MS)
    asked_at = page.evaluate(
        """() => performance.getEntriesByType('resource')
            .filter((e) => e.name.endsWith('/plotly.min.js')).map((e) => e.startTime)"""
    )
    assert asked_at
    assert min(asked_at) >= drawn
    count = len(gate.asked)

    # The trial page: its tables (content), then its charts, plotly.js not asked again.
    name = site.studies["done"]
    page.goto(site.page_url(f"/study/{name}/trial/0"))
    wait_rendered(page, "trial")
    content, rendered = page.evaluate("() => [window.__lrsearchContent, window.__lrsearchRendered]")
    assert 0 < content <= rendered
    assert page.locator("#trial-params tbody tr").count() > 0
    assert _traces(page, "trial-chart-learning") == 1
    page.goto(site.page_url(f"/study/{name}"))
    wait_rendered(page, "study")
    assert len(gate.asked) == count
