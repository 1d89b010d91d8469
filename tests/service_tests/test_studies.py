"""Creating, listing, reading and controlling studies over REST."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.service_tests.conftest import Api, unique_name
from tests.service_tests.helpers import DriveTrials

ZERO_COUNTS = {"RUNNING": 0, "WAITING": 0, "COMPLETE": 0, "PRUNED": 0, "FAIL": 0}


def test_create_returns_201_with_the_filled_in_definition(api: Api) -> None:
    name = unique_name()
    response = api.post(
        "/studies",
        json={"name": name, "task": "synthetic", "budget": {"n_trials": 8, "max_epochs": 3}},
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/api/v1/studies/{name}"
    study = response.json()
    assert study["name"] == name
    assert study["state"] == "running"
    assert study["n_trials"] == 8
    assert study["counts"] == ZERO_COUNTS
    assert study["best"] is None
    # Defaults are filled in; the warm-up default is shrunk to fit 3 epochs.
    definition = study["definition"]
    assert definition["sampler"] == {
        "type": "tpe",
        "seed": None,
        "balance_schedules": True,
        "min_per_schedule": 3,
        "balance_every": 3,
        "balance_start": 0.0,
        "protect_priority": True,
    }
    assert definition["search_space"]["warmup_epochs"] == {"low": 0, "high": 2}
    assert definition["objective"]["metric"] == "val_accuracy"


def test_create_accepts_the_documented_example(api: Api) -> None:
    from lrsearch.service.schemas import EXAMPLE_DEFINITION

    body = {**EXAMPLE_DEFINITION, "name": unique_name(), "task": "synthetic"}
    assert api.post("/studies", json=body).status_code == 201


def test_duplicate_name_is_409_and_the_first_study_is_kept(api: Api) -> None:
    study = api.create_study(budget={"n_trials": 3, "max_epochs": 2})
    again = api.post(
        "/studies", json={"name": study["name"], "task": "synthetic", "budget": {"n_trials": 9}}
    )
    assert again.status_code == 409
    assert again.json()["type"] == "urn:lrsearch:problem:study-exists"
    assert api.get(f"/studies/{study['name']}").json()["n_trials"] == 3


def test_unknown_study_is_404(api: Api) -> None:
    response = api.get("/studies/no-such-study-anywhere")
    assert response.status_code == 404
    problem = response.json()
    assert problem["type"] == "urn:lrsearch:problem:study-not-found"
    assert problem["instance"] == "/api/v1/studies/no-such-study-anywhere"
    for path in ("/trials", "/trials/0", "/best", "/schedules", "/importance"):
        assert api.get(f"/studies/no-such-study-anywhere{path}").status_code == 404, path
    assert api.post("/studies/no-such-study-anywhere/pause").status_code == 404


def test_list_pages_newest_first_and_only_the_tenants_studies(api: Api, other_api: Api) -> None:
    names = [api.create_study()["name"] for _ in range(5)]
    other_api.create_study()
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = api.get("/studies", params=params).json()
        seen += [s["name"] for s in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names[::-1]
    assert pages == 3
    item = api.get("/studies", params={"limit": 1}).json()["items"][0]
    assert set(item) == {
        "name",
        "task",
        "state",
        "control_state",
        "state_reason",
        "direction",
        "n_trials",
        "max_epochs",
        "created_at",
        "counts",
        "finished",
        "best_value",
    }


@pytest.mark.parametrize(
    "cursor", ["nope", "c3R1ZGllczp4", "", "%%%", "c3R1ZGllczo5OTk5OTk5OTk5OTk5"]
)
def test_list_with_a_bad_cursor_is_422(api: Api, cursor: str) -> None:
    response = api.get("/studies", params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


def test_get_reports_counts_best_and_epochs(api: Api, drive: Callable[..., DriveTrials]) -> None:
    study = api.create_study(budget={"n_trials": 5, "max_epochs": 4})
    drive(study["name"], outcomes=["COMPLETE", "PRUNED", "FAIL", "COMPLETE"])
    got = api.get(f"/studies/{study['name']}").json()
    assert got["state"] == "running"
    assert got["counts"] == {**ZERO_COUNTS, "COMPLETE": 2, "PRUNED": 1, "FAIL": 1}
    assert got["finished"] == 4
    assert got["best"]["state"] == "COMPLETE"
    assert got["best"]["value"] is not None
    assert got["epochs_spent"] == 4 + 1 + 1 + 4
    assert got["epochs_saved"] == 3
    assert got["definition"]["name"] == study["name"]


def test_state_is_finished_once_the_budget_is_done(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    study = api.create_study(budget={"n_trials": 2, "max_epochs": 2})
    drive(study["name"], outcomes=["COMPLETE", "COMPLETE", "COMPLETE"])
    got = api.get(f"/studies/{study['name']}").json()
    assert got["state"] == "finished"
    assert got["control_state"] == "running"
    assert got["counts"]["COMPLETE"] == 2


def test_pause_resume_cancel_transitions(api: Api) -> None:
    name = api.create_study()["name"]

    def act(action: str) -> Any:
        return api.post(f"/studies/{name}/{action}")

    assert act("resume").status_code == 409
    paused = act("pause")
    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert act("pause").status_code == 409
    assert api.get("/studies").json()["items"][0]["state"] == "paused"
    assert act("resume").json()["state"] == "running"
    assert act("cancel").json()["state"] == "cancelled"
    for action in ("pause", "resume", "cancel"):
        response = act(action)
        assert response.status_code == 409, action
        assert response.json()["type"] == "urn:lrsearch:problem:invalid-state"


def test_a_paused_study_hands_out_no_trials(api: Api, drive: Callable[..., DriveTrials]) -> None:
    name = api.create_study()["name"]
    api.post(f"/studies/{name}/pause")
    assert drive(name, outcomes=["COMPLETE"]).by_state == {}
    api.post(f"/studies/{name}/resume")
    assert drive(name, outcomes=["COMPLETE"]).numbers("COMPLETE") == [0]
