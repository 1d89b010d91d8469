"""What a study found, over REST: best trial, best schedules, parameter importance."""

from __future__ import annotations

from collections.abc import Callable

from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials


def test_best_is_null_until_a_trial_completes(api: Api, drive: Callable[..., DriveTrials]) -> None:
    name = api.create_study()["name"]
    assert api.get(f"/studies/{name}/best").json() == {"study": name, "trial": None}
    drive(name, outcomes=["PRUNED", "FAIL"])
    assert api.get(f"/studies/{name}/best").json()["trial"] is None


def test_best_is_the_highest_complete_value(api: Api, drive: Callable[..., DriveTrials]) -> None:
    name = api.create_study(budget={"n_trials": 6, "max_epochs": 2})["name"]
    drive(name, outcomes=["COMPLETE"] * 5)
    trials = api.get(f"/studies/{name}/trials").json()["items"]
    best = api.get(f"/studies/{name}/best").json()["trial"]
    assert best["value"] == max(t["value"] for t in trials)
    assert api.get(f"/studies/{name}").json()["best"] == best


def test_schedules_give_best_trial_counts_and_median_per_schedule(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    schedules = ["step", "cosine", "warmup"]
    name = api.create_study(
        budget={"n_trials": 12, "max_epochs": 3},
        search_space={"schedules": schedules},
    )["name"]
    drive(name, outcomes=["COMPLETE", "PRUNED", "FAIL"] * 3)
    got = api.get(f"/studies/{name}/schedules").json()
    assert got["study"] == name
    items = got["items"]
    assert sorted(s["schedule"] for s in items) == sorted(schedules)
    trials = api.get(f"/studies/{name}/trials").json()["items"]
    for stats in items:
        mine = [t for t in trials if t["schedule"] == stats["schedule"]]
        assert stats["n_complete"] == sum(t["state"] == "COMPLETE" for t in mine)
        assert stats["n_pruned"] == sum(t["state"] == "PRUNED" for t in mine)
        assert stats["n_failed"] == sum(t["state"] == "FAIL" for t in mine)
        complete = [t["value"] for t in mine if t["state"] == "COMPLETE"]
        if complete:
            assert stats["best"]["value"] == max(complete)
            assert stats["median_value"] is not None
        else:
            assert stats["best"] is None
    ranked = [s["best"]["value"] for s in items if s["best"] is not None]
    assert ranked == sorted(ranked, reverse=True)
    # Schedules without a completed trial come last.
    with_best = [s["best"] is not None for s in items]
    assert with_best == sorted(with_best, reverse=True)


def test_importance_needs_two_completed_trials(api: Api, drive: Callable[..., DriveTrials]) -> None:
    name = api.create_study()["name"]
    drive(name, outcomes=["COMPLETE", "PRUNED"])
    response = api.get(f"/studies/{name}/importance")
    assert response.status_code == 409
    assert response.json()["type"] == "urn:lrsearch:problem:importance-unavailable"
    assert "at least 2 completed trials" in response.json()["detail"]


def test_importance_ranks_the_common_parameters_and_is_cached(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    # Several schedules: their own parameters exist only in some trials.
    name = api.create_study(
        budget={"n_trials": 14, "max_epochs": 2},
        search_space={"schedules": ["step", "cosine", "cyclic"]},
    )["name"]
    drive(name, outcomes=["COMPLETE"] * 12)
    first = api.get(f"/studies/{name}/importance")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["n_complete"] == 12
    assert body["evaluator"] == "ped_anova"
    importances = body["importances"]
    assert {"learning_rate", "dropout", "batch_size", "weight_init"} <= set(importances)
    trials = api.get(f"/studies/{name}/trials").json()["items"]
    # Every ranked parameter is one the trials have (PED-ANOVA also ranks the
    # schedule-specific ones, over the trials of that schedule).
    known = set().union(*(t["params"] for t in trials))
    assert set(importances) <= known
    assert abs(sum(importances.values()) - 1.0) < 1e-6
    assert list(importances.values()) == sorted(importances.values(), reverse=True)
    # The same until more trials finish, then recomputed.
    assert api.get(f"/studies/{name}/importance").json() == body
    drive(name, outcomes=["COMPLETE"])
    assert api.get(f"/studies/{name}/importance").json()["n_complete"] == 13
