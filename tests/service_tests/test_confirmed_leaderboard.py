"""Confirmed winners over REST: the leaderboard and the trial protocol.

The leaderboard case writes chosen values through the real trial path, so the
ranking and the within-noise flags are known by hand: step's single best trial
(0.95) is a lucky one that its confirmations do not repeat.
"""

from __future__ import annotations

from typing import Any

import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import sample_config
from tests.service_tests.conftest import Api

CLIENT = "host-k1:1"

PARAMS: dict[str, dict[str, Any]] = {
    "step": {"step.step_size": 2, "step.gamma": 0.5},
    "cosine": {"cosine.eta_min": 0.01},
    "exponential": {"exponential.gamma": 0.9},
}
# schedule -> (search value, confirmation values)
VALUES = {
    "step": (0.95, [0.60, 0.62]),
    "cosine": (0.90, [0.89, 0.91]),
    "exponential": (0.40, [0.41, 0.39]),
}


def _finish(api: Api, name: str, value_of: Any) -> list[int]:
    """Claim every trial the study hands out, complete each with ``value_of(trial)``."""
    record = api.record(name)
    study = storage.load_optuna_study(api.backend, record)
    numbers = []
    while (
        trial := storage.claim_trial(api.backend, study, worker="w:1", device="cpu")
    ) is not None:
        sample_config(trial, record.definition)
        value = value_of(trial)
        storage.finish_trial(api.backend, study, trial, state=TrialState.COMPLETE, value=value)
        numbers.append(trial.number)
    return numbers


def test_leaderboard_ranks_by_confirmed_mean_and_flags_noise(api: Api) -> None:
    name = api.create_study(
        budget={"n_trials": 3, "max_epochs": 2},
        pruner={"type": "none"},
        search_space={"schedules": list(VALUES), "warmup_epochs": 0},
        confirm={"top_k": 1, "seeds": 2},
    )["name"]
    record = api.record(name)
    study = storage.load_optuna_study(api.backend, record)
    base = {"learning_rate": 0.05, "batch_size": 64, "dropout": 0.1, "weight_init": "default"}
    for schedule, extra in PARAMS.items():
        storage.enqueue_fixed(api.backend, study, record, {**base, "schedule": schedule, **extra})
    used: dict[str, int] = {}

    def value_of(trial: Any) -> float:
        schedule = trial.params["schedule"]
        search, confirmations = VALUES[schedule]
        if "confirmation_of" not in trial.user_attrs:
            return search
        used[schedule] = used.get(schedule, 0) + 1
        return confirmations[used[schedule] - 1]

    numbers = _finish(api, name, value_of)
    assert len(numbers) == 3 + 3 * 2
    board = api.get(f"/studies/{name}/schedules")
    assert board.status_code == 200, board.text
    items = {i["schedule"]: i for i in board.json()["items"]}
    order = [i["schedule"] for i in board.json()["items"]]
    # The single best trial says step; the confirmed means say cosine.
    assert items["step"]["best"]["value"] == pytest.approx(0.95)
    assert order == ["cosine", "step", "exponential"]
    step, cosine, exp = (items[s]["confirmed"] for s in ("step", "cosine", "exponential"))
    assert step["n"] == cosine["n"] == exp["n"] == 3
    assert step["mean"] == pytest.approx((0.95 + 0.60 + 0.62) / 3)
    assert cosine["mean"] == pytest.approx(0.90)
    assert cosine["std"] == pytest.approx(0.01)
    assert step["of"] == items["step"]["best"]["number"]
    # |0.9 - 0.7233| = 0.177 < 2 * sqrt(0.0387/3 + 0.0001/3) = 0.227: not established.
    assert cosine["within_noise"] == ["step"]
    assert step["within_noise"] == ["cosine"]
    # 0.323 apart against 0.227: exponential is clearly behind both.
    assert exp["within_noise"] == []
    # Confirmations are no search trials: counts and the single best ignore them.
    assert items["step"]["n_complete"] == 1
    detail = api.get(f"/studies/{name}").json()
    assert detail["state"] == "finished"
    assert detail["counts"]["COMPLETE"] == 3
    assert detail["confirmations"]["COMPLETE"] == 6
    assert detail["best"]["value"] == pytest.approx(0.95)


def _listed(api: Api, name: str) -> Any:
    items = api.get("/studies", params={"limit": 100}).json()["items"]
    return next(s for s in items if s["name"] == name)


def _claim(api: Api, name: str) -> Any:
    return api.post(f"/studies/{name}/trials/claim", json={"client_id": CLIENT})


def _run(api: Api, name: str, number: int, value: float) -> None:
    body = {"client_id": CLIENT, "epoch": 0, "value": value}
    assert api.post(f"/studies/{name}/trials/{number}/reports", json=body).status_code == 200
    done = api.post(f"/studies/{name}/trials/{number}/complete", json={"client_id": CLIENT})
    assert done.status_code == 200, done.text


def test_the_trial_protocol_hands_out_confirmations(api: Api) -> None:
    name = api.create_study(
        budget={"n_trials": 2, "max_epochs": 1},
        pruner={"type": "none"},
        search_space={"schedules": ["step"], "warmup_epochs": 0},
        confirm={"top_k": 1, "seeds": 1},
    )["name"]
    search = []
    for value in (0.5, 0.7):
        claimed = _claim(api, name)
        assert claimed.status_code == 201, claimed.text
        search.append(claimed.json())
        _run(api, name, claimed.json()["number"], value)
    waiting = api.get(f"/studies/{name}").json()
    assert waiting["state"] == "running"  # not finished: its confirmation is still to run
    listed = _listed(api, name)
    assert (listed["state"], listed["finished"]) == ("running", 2)
    claimed = _claim(api, name)
    assert claimed.status_code == 201, claimed.text
    body = claimed.json()
    frozen = storage.load_optuna_study(api.backend, api.record(name)).trials[body["number"]]
    assert frozen.user_attrs["confirmation_of"] == search[1]["number"]  # the winner, 0.7
    assert body["params"] == search[1]["params"]
    _run(api, name, body["number"], 0.65)
    assert _claim(api, name).status_code == 204
    detail = api.get(f"/studies/{name}").json()
    assert detail["state"] == "finished"
    assert detail["counts"]["COMPLETE"] == 2
    assert detail["confirmations"]["COMPLETE"] == 1
    listed = _listed(api, name)
    assert (listed["state"], listed["finished"]) == ("finished", 2)
    assert listed["counts"]["COMPLETE"] == 2
    board = api.get(f"/studies/{name}/schedules").json()["items"][0]
    assert board["confirmed"]["mean"] == pytest.approx(0.675)
    assert board["confirmed"]["n"] == 2
