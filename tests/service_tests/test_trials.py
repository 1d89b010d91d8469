"""A study's trials over REST: enqueue a fixed configuration, list, read one."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials

BASELINE: dict[str, Any] = {
    "schedule": "step",
    "learning_rate": 0.05,
    "batch_size": 64,
    "dropout": 0.1,
    "weight_init": "default",
    "warmup_epochs": 1,
    "step.step_size": 2.0,
    "step.gamma": 0.5,
}


def test_enqueue_a_baseline_runs_it_next(api: Api, drive: Callable[..., DriveTrials]) -> None:
    name = api.create_study()["name"]
    response = api.post(f"/studies/{name}/trials", json={"params": BASELINE})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["params"]["step.step_size"] == 2
    assert isinstance(body["params"]["step.step_size"], int)
    waiting = api.get(f"/studies/{name}/trials", params={"state": "WAITING"}).json()["items"]
    assert [t["schedule"] for t in waiting] == ["step"]
    drive(name, outcomes=["COMPLETE"])
    trial = api.get(f"/studies/{name}/trials/0").json()
    assert trial["state"] == "COMPLETE"
    assert trial["params"]["learning_rate"] == 0.05
    assert trial["params"]["step.gamma"] == 0.5


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"learning_rate": 5.0}, ["params", "learning_rate"]),
        ({"batch_size": 48}, ["params", "batch_size"]),
        ({"schedule": "linear"}, ["params", "schedule"]),
        ({"step.gamma": None}, ["params", "step.gamma"]),
        ({"cosine.eta_min": 0.01}, ["params", "cosine.eta_min"]),
        ({"dropout": "high"}, ["params", "dropout"]),
    ],
    ids=["lr-out-of-range", "batch-not-a-choice", "unknown-schedule", "missing", "extra", "type"],
)
def test_enqueue_validates_against_the_space(
    api: Api, change: dict[str, Any], loc: list[str]
) -> None:
    name = api.create_study()["name"]
    params = {k: v for k, v in {**BASELINE, **change}.items() if v is not None}
    response = api.post(f"/studies/{name}/trials", json={"params": params})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:lrsearch:problem:invalid-configuration"
    assert loc in [e["loc"] for e in problem["errors"]]


@pytest.mark.parametrize("body", [{}, {"params": "step"}, {"params": {}, "extra": 1}, [1]])
def test_enqueue_with_a_malformed_body_is_422(api: Api, body: Any) -> None:
    name = api.create_study()["name"]
    assert api.post(f"/studies/{name}/trials", json=body).status_code == 422


def test_enqueue_beyond_the_budget_is_409(api: Api) -> None:
    name = api.create_study(budget={"n_trials": 2, "max_epochs": 3})["name"]
    for _ in range(2):
        assert api.post(f"/studies/{name}/trials", json={"params": BASELINE}).status_code == 202
    response = api.post(f"/studies/{name}/trials", json={"params": BASELINE})
    assert response.status_code == 409
    assert response.json()["type"] == "urn:lrsearch:problem:budget-exhausted"


def test_enqueue_into_a_cancelled_study_is_409(api: Api) -> None:
    name = api.create_study()["name"]
    api.post(f"/studies/{name}/cancel")
    assert api.post(f"/studies/{name}/trials", json={"params": BASELINE}).status_code == 409


def test_list_filters_by_state_and_orders_by_value(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study(budget={"n_trials": 8, "max_epochs": 3})["name"]
    done = drive(name, outcomes=["COMPLETE", "PRUNED", "COMPLETE", "FAIL", "COMPLETE"])
    all_trials = api.get(f"/studies/{name}/trials").json()
    assert [t["number"] for t in all_trials["items"]] == [0, 1, 2, 3, 4]
    assert all_trials["next_cursor"] is None
    complete = api.get(f"/studies/{name}/trials", params={"state": "COMPLETE"}).json()["items"]
    assert [t["number"] for t in complete] == done.numbers("COMPLETE")
    two = api.get(f"/studies/{name}/trials", params=[("state", "PRUNED"), ("state", "FAIL")])
    assert {t["state"] for t in two.json()["items"]} == {"PRUNED", "FAIL"}
    by_value = api.get(
        f"/studies/{name}/trials", params={"order": "value", "state": "COMPLETE"}
    ).json()["items"]
    values = [t["value"] for t in by_value]
    assert values == sorted(values, reverse=True)  # val_accuracy: maximize


def test_cursor_pagination_walks_every_trial_once(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study(budget={"n_trials": 7, "max_epochs": 2})["name"]
    drive(name, outcomes=["COMPLETE"] * 7)
    for order in ("number", "value"):
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, "order": order}
            if cursor:
                params["cursor"] = cursor
            page = api.get(f"/studies/{name}/trials", params=params).json()
            seen += [t["number"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == list(range(7)), order


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJzIjogMX0"},
        {"limit": 0},
        {"limit": 100000},
        {"state": "DONE"},
        {"order": "random"},
    ],
    ids=["garbage-cursor", "foreign-cursor", "limit-0", "limit-huge", "state", "order"],
)
def test_bad_list_parameters_are_422(api: Api, params: dict[str, Any]) -> None:
    name = api.create_study()["name"]
    response = api.get(f"/studies/{name}/trials", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"]


def test_a_cursor_of_another_ordering_is_422(api: Api, drive: Callable[..., DriveTrials]) -> None:
    name = api.create_study(budget={"n_trials": 3, "max_epochs": 2})["name"]
    drive(name, outcomes=["COMPLETE"] * 3)
    cursor = api.get(f"/studies/{name}/trials", params={"limit": 1}).json()["next_cursor"]
    response = api.get(f"/studies/{name}/trials", params={"cursor": cursor, "order": "value"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


def test_one_trial_has_curves_metrics_and_error(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study(budget={"n_trials": 3, "max_epochs": 3})["name"]
    done = drive(name, outcomes=["COMPLETE", "FAIL"])
    ok = api.get(f"/studies/{name}/trials/{done.numbers('COMPLETE')[0]}").json()
    assert ok["state"] == "COMPLETE"
    assert list(ok["intermediate_values"]) == ["0", "1", "2"]
    assert ok["value"] == ok["intermediate_values"]["2"]
    assert len(ok["lr_curve"]) == 3
    assert ok["metrics"][0]["epoch"] == 0
    assert ok["worker"] == "test-host:1"
    assert ok["epochs_run"] == 3
    assert ok["duration_s"] is not None
    assert ok["datetime_start"] is not None
    failed = api.get(f"/studies/{name}/trials/{done.numbers('FAIL')[0]}").json()
    assert failed["state"] == "FAIL"
    assert failed["error"] == "diverged: loss is nan"
    # The NaN the trial reported is not valid JSON: it comes back as null.
    assert failed["intermediate_values"]["1"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in failed["lr_curve"])


def test_unknown_trial_is_404_and_a_bad_number_422(api: Api) -> None:
    name = api.create_study()["name"]
    missing = api.get(f"/studies/{name}/trials/42")
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:lrsearch:problem:trial-not-found"
    assert api.get(f"/studies/{name}/trials/abc").status_code == 422
    assert api.get(f"/studies/{name}/trials/-1").status_code == 422
