"""The leaderboard's Confirmed column in headless Chromium."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition, sample_config
from tests.dashboard_tests.conftest import DashboardSite, enter_key, screenshot, wait_rendered

pytestmark = pytest.mark.browser

# schedule -> (search value, confirmation values): step's 0.95 is a lucky trial.
VALUES = {"step": (0.95, [0.60, 0.62]), "cosine": (0.90, [0.89, 0.91])}


def _confirmed_study(site: DashboardSite) -> str:
    name = f"dash-confirm-{uuid.uuid4().hex[:8]}"
    definition = parse_definition(
        {
            "name": name,
            "task": "synthetic",
            "budget": {"n_trials": 2, "max_epochs": 2},
            "pruner": {"type": "none"},
            "search_space": {"schedules": list(VALUES), "warmup_epochs": 0},
            "confirm": {"top_k": 1, "seeds": 2},
        }
    )
    backend = site.backend
    record = storage.create_study(backend, definition)
    study = storage.load_optuna_study(backend, record)
    for schedule in VALUES:
        storage.enqueue_fixed(backend, study, record, {"schedule": schedule})
    used: dict[str, int] = {}
    while (trial := storage.claim_trial(backend, study, worker="w:1", device="cpu")) is not None:
        sample_config(trial, record.definition)
        schedule = trial.params["schedule"]
        search, confirmations = VALUES[schedule]
        value = search
        if "confirmation_of" in trial.user_attrs:
            used[schedule] = used.get(schedule, 0) + 1
            value = confirmations[used[schedule] - 1]
        storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=value)
    return name


def test_confirmed_column_shows_mean_spread_and_noise(page: Any, site: DashboardSite) -> None:
    name = _confirmed_study(site)
    enter_key(page, site, site.keys["read"], f"/study/{name}")
    wait_rendered(page, "study")
    expected = site.api(f"/studies/{name}/schedules")["items"]
    rows = page.evaluate(
        """() => [...document.querySelectorAll('#leaderboard tbody tr')].map((tr) => {
            const td = tr.querySelector('td[data-field=confirmed]');
            return [tr.dataset.schedule, JSON.parse(td.dataset.raw), td.textContent.trim()];
        })"""
    )
    # Ranked by the confirmed mean (cosine), not by the lucky single trial (step).
    assert [r[0] for r in rows] == [i["schedule"] for i in expected] == ["cosine", "step"]
    for (_, raw, text), item in zip(rows, expected, strict=True):
        assert raw == item["confirmed"]
        mean, std = text.split(" (")[0].split(" ± ")
        assert float(mean) == pytest.approx(item["confirmed"]["mean"], rel=1e-3)
        assert float(std) == pytest.approx(item["confirmed"]["std"], rel=1e-3)
        assert text.endswith(f"(3) ≈ {item['confirmed']['within_noise'][0]}")
    header = page.locator("#leaderboard thead th").all_text_contents()
    assert len(header) == len(page.locator("#leaderboard tbody tr").first.locator("td").all())
    screenshot(page, "dashboard-confirmed")
