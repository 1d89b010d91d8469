"""Enqueue with ``partial: true``: the given parameters are fixed, the sampler draws the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials


def test_partial_params_are_fixed_and_the_rest_sampled(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study()["name"]
    given = {"schedule": "cosine", "learning_rate": 0.05}
    response = api.post(f"/studies/{name}/trials", json={"params": given, "partial": True})
    assert response.status_code == 202, response.text
    assert response.json()["params"] == given
    drive(name, outcomes=["COMPLETE"])
    trial = api.get(f"/studies/{name}/trials/0").json()
    assert trial["state"] == "COMPLETE"
    assert trial["params"]["schedule"] == "cosine"
    assert trial["params"]["learning_rate"] == 0.05
    # Sampled, from the study's space: the cosine schedule's own parameters and the rest.
    assert {"batch_size", "dropout", "weight_init"} <= trial["params"].keys()
    assert any(k.startswith("cosine.") for k in trial["params"])


def test_partial_params_are_typed_like_full_ones(api: Api) -> None:
    name = api.create_study()["name"]
    body = {"params": {"schedule": "step", "step.step_size": 2.0}, "partial": True}
    response = api.post(f"/studies/{name}/trials", json=body)
    assert response.status_code == 202, response.text
    size = response.json()["params"]["step.step_size"]
    assert size == 2
    assert isinstance(size, int)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"learning_rate": 5.0, "batch_size": 48}, {"learning_rate", "batch_size"}),
        ({"cosine.eta_min": 0.01}, {"cosine.eta_min"}),
        ({"momentum": 0.9}, {"momentum"}),
    ],
    ids=["every-bad-value", "schedule-param-without-schedule", "unknown"],
)
def test_partial_params_are_still_checked(
    api: Api, params: dict[str, Any], expected: set[str]
) -> None:
    name = api.create_study()["name"]
    response = api.post(f"/studies/{name}/trials", json={"params": params, "partial": True})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {e["loc"][1] for e in errors} == expected
    assert all(e["loc"][0] == "params" for e in errors)
    assert all(e["msg"] != "missing" for e in errors)


def test_without_partial_a_subset_is_still_refused(api: Api) -> None:
    name = api.create_study()["name"]
    response = api.post(f"/studies/{name}/trials", json={"params": {"schedule": "cosine"}})
    assert response.status_code == 422
    assert "missing" in {e["msg"] for e in response.json()["errors"]}
