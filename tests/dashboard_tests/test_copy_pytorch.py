"""The leaderboard's "Copy as PyTorch" button, in headless Chromium.

Each schedule's winner has a button; a click shows the trial's code (from
``GET .../trials/{number}/pytorch``) in a ``<pre>`` and copies it to the
clipboard. The snippet read back from the page, run with torch, gives the
learning rates the worker recorded for that trial.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.dashboard_tests.conftest import DashboardSite, enter_key, screenshot, wait_rendered
from tests.service_tests.test_pytorch_code_route import code_lr_curve

pytestmark = pytest.mark.browser

N_TRAIN = 2000  # the synthetic task's default size, which the fixture's studies use


def test_each_winner_copies_its_trial_as_pytorch(page: Any, site: DashboardSite) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    name = site.studies["done"]
    enter_key(page, site, site.keys["read"], f"/study/{name}")
    wait_rendered(page, "study")
    assert page.is_hidden("#pytorch-box")
    winners = [s["best"] for s in site.api(f"/studies/{name}/schedules")["items"] if s["best"]]
    assert len(winners) == 6
    for best in winners:
        number = best["number"]
        page.click(f"#leaderboard button.copy-pytorch[data-trial='{number}']")
        page.wait_for_selector(f"#pytorch-box[data-trial='{number}']:visible")
        shown = page.inner_text("#pytorch-code")
        expected = site.api(f"/studies/{name}/trials/{number}/pytorch")["code"]
        assert shown.strip() == expected.strip()
        assert page.evaluate("() => navigator.clipboard.readText()") == expected
        assert "copied to the clipboard" in page.inner_text("#pytorch-caption")
        detail = site.api(f"/studies/{name}/trials/{number}")
        values = [detail["intermediate_values"][str(e)] for e in range(len(detail["lr_curve"]))]
        lrs = code_lr_curve(
            shown, steps_per_epoch=math.ceil(N_TRAIN / best["batch_size"]), values=values
        )
        assert lrs == pytest.approx(detail["lr_curve"], rel=1e-9), best["schedule"]
    screenshot(page, "dashboard-copy-pytorch")


def test_the_code_does_not_follow_to_another_study(page: Any, site: DashboardSite) -> None:
    done, live = site.studies["done"], site.studies["live"]
    enter_key(page, site, site.keys["read"], f"/study/{done}")
    wait_rendered(page, "study")
    page.locator("#leaderboard button.copy-pytorch").first.click()
    page.wait_for_selector("#pytorch-box:visible")
    page.goto(site.page_url(f"/study/{live}"))
    wait_rendered(page, "study")
    assert page.is_hidden("#pytorch-box")
    page.close()  # before its server stops: no poll may hit a closed port
