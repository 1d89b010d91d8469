"""Keys in the browser (wrong key, other tenant, forget), the studies list and a trial page."""

from __future__ import annotations

from typing import Any

import pytest

from lrsearch.service import Settings
from tests.dashboard_tests.conftest import (
    DashboardSite,
    dashboard_app,
    enter_key,
    screenshot,
    serving,
    wait_rendered,
)

pytestmark = pytest.mark.browser

WRONG_KEY = "lrs_0123456789abcdef_" + "x" * 40


def _study_rows(tab: Any) -> list[str]:
    rows: list[str] = tab.evaluate(
        "() => [...document.querySelectorAll('#studies-table tbody tr')]"
        ".map((r) => r.dataset.study)"
    )
    return rows


def test_a_wrong_key_shows_an_error_and_no_data(page: Any, site: DashboardSite) -> None:
    enter_key(page, site, WRONG_KEY, f"/study/{site.studies['done']}")
    error = page.wait_for_selector("#key-error:visible")
    assert "refused" in error.inner_text()
    assert page.is_visible("#key-view")
    for view in ("#studies-view", "#study-view", "#trial-view"):
        assert page.is_hidden(view)
    assert _study_rows(page) == []
    assert page.locator("#leaderboard tbody tr").count() == 0
    body = page.inner_text("body")
    assert all(name not in body for name in site.studies.values())
    assert page.evaluate("() => localStorage.getItem('lrsearch.apiKey')") is None
    screenshot(page, "dashboard-wrong-key")


def test_a_read_key_of_another_tenant_sees_none_of_these_studies(
    page: Any, site: DashboardSite
) -> None:
    enter_key(page, site, site.keys["other_read"])
    wait_rendered(page, "studies")
    assert _study_rows(page) == []
    assert page.is_visible("#studies-empty")
    assert "someone-else" in page.inner_text("#whoami")
    # Asking for one of them by name is a "not found", and shows nothing of it.
    page.evaluate(f"() => {{ location.hash = '#/study/{site.studies['done']}'; }}")
    error = page.wait_for_selector("#error:visible")
    assert error.inner_text().startswith("404")
    assert page.locator("#leaderboard tbody tr").count() == 0


def test_studies_list_shows_progress_and_the_key_is_kept_until_forgotten(
    page: Any, site: DashboardSite
) -> None:
    enter_key(page, site, site.keys["read"])
    wait_rendered(page, "studies")
    # Newest first.
    assert _study_rows(page) == [site.studies[r] for r in ("idle", "live", "done")]
    for role, name in site.studies.items():
        study = site.api(f"/studies/{name}")
        row = page.locator(f"#studies-table tr[data-study={name}]")
        assert row.locator("td[data-field=progress]").inner_text() == (
            f"{study['finished']}/{study['n_trials']}"
        ), role
        assert row.locator("td").nth(2).inner_text().lower() == study["state"]
    screenshot(page, "dashboard-studies")

    page.reload()  # the key is remembered
    wait_rendered(page, "studies")
    assert len(_study_rows(page)) == 3
    page.click("#forget-key")
    assert page.is_visible("#key-view")
    assert _study_rows(page) == []
    assert page.evaluate("() => localStorage.getItem('lrsearch.apiKey')") is None


def test_no_key_is_asked_when_the_service_does_not_check_keys(
    page: Any, site: DashboardSite
) -> None:
    # As `lrsearch demo --serve` runs it on a loopback address.
    with serving(dashboard_app(Settings(storage=site.storage_url, auth_disabled=True))) as url:
        page.goto(url + "/")
        wait_rendered(page, "studies")
        assert page.is_hidden("#key-view")
        assert page.is_hidden("#forget-key")
        assert len(_study_rows(page)) == 3
        assert "not checked" in page.inner_text("#whoami")
        page.close()  # before its server stops: no poll may hit a closed port


def test_trial_page_shows_params_curves_and_metrics(page: Any, site: DashboardSite) -> None:
    name = site.studies["done"]
    best = site.api(f"/studies/{name}/best")["trial"]
    detail = site.api(f"/studies/{name}/trials/{best['number']}")
    enter_key(page, site, site.keys["read"], f"/study/{name}")
    wait_rendered(page, "study")
    # From the leaderboard's link to the trial page.
    page.click(f"#leaderboard td[data-field=number] a[href$='/trial/{best['number']}']")
    wait_rendered(page, "trial")
    params = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#trial-params tr')]
            .map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent]))"""
    )
    assert set(params) == set(detail["params"])
    assert params["schedule"] == detail["schedule"]
    lr_y = page.evaluate("() => Array.from(document.getElementById('trial-chart-lr').data[0].y)")
    assert lr_y == detail["lr_curve"]
    learning = page.evaluate("() => document.getElementById('trial-chart-learning').data")
    assert len(learning) == 1
    assert learning[0]["y"] == list(detail["intermediate_values"].values())
    assert page.locator("#trial-metrics tbody tr").count() == len(detail["metrics"])
    assert page.is_hidden("#trial-error")
    screenshot(page, "dashboard-trial")
