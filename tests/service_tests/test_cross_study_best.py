"""GET /schedules/best?task=NAME and the complete leaderboard, over the real app.

Real FastAPI TestClient on SQLite and PostgreSQL; trials run through storage
as a worker runs them (tests.service_tests.helpers.drive_trials). Every test
has tenants of its own, so "the task's studies" are exactly the ones it made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.service.importance import MIN_RELIABLE_TRIALS
from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials, drive_trials

SCHEDULES = ["step", "cosine", "cyclic", "warmup"]


def _study(api: Api, n: int = 8, **fields: Any) -> str:
    body = api.create_study(
        budget={"n_trials": n, "max_epochs": 3},
        search_space={"schedules": SCHEDULES},
        **fields,
    )
    name = str(body["name"])
    drive_trials(api.backend, api.record(name), outcomes=["COMPLETE"] * (n - 2) + ["PRUNED"] * 2)
    return name


def _naive(api: Api, names: list[str], k: int = 3) -> dict[str, list[tuple[str, int, float]]]:
    """Top ``k`` per schedule over every trial of every study, from Optuna itself."""
    pool: dict[str, list[tuple[float, str, int]]] = {}
    for name in names:
        record = api.record(name)
        sign = -1.0 if record.direction == "maximize" else 1.0
        for t in storage.load_optuna_study(api.backend, record).get_trials(
            states=(TrialState.COMPLETE,)
        ):
            assert t.value is not None
            pool.setdefault(t.params["schedule"], []).append((sign * t.value, name, t.number))
    return {s: [(name, n, abs(v)) for v, name, n in sorted(rows)[:k]] for s, rows in pool.items()}


def _got(body: dict[str, Any], direction: str) -> dict[str, list[tuple[str, int, float]]]:
    return {
        item["schedule"]: [(t["study"], t["number"], t["value"]) for t in item["trials"]]
        for item in body["items"]
        if item["direction"] == direction
    }


def test_best_across_studies_matches_every_studys_trials(api: Api) -> None:
    names = [_study(api) for _ in range(3)]
    response = api.get("/schedules/best", params={"task": "synthetic"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "synthetic"
    assert _got(body, "maximize") == _naive(api, names)
    for item in body["items"]:
        for t in item["trials"]:
            assert t["epochs_trained"] == 3
            assert t["settings"]["call"].startswith(t["settings"]["scheduler"] + "(")
            assert t["metric"] == "val_accuracy"


def test_top_asks_for_more_or_fewer(api: Api) -> None:
    names = [_study(api, n=10) for _ in range(2)]
    one = api.get("/schedules/best", params={"task": "synthetic", "top": 1}).json()
    assert _got(one, "maximize") == _naive(api, names, k=1)
    five = api.get("/schedules/best", params={"task": "synthetic", "top": 5}).json()
    assert _got(five, "maximize") == _naive(api, names, k=5)


def test_only_the_callers_tenant_is_read(api: Api, other_api: Api) -> None:
    mine = _study(api)
    theirs = _study(other_api)
    body = api.get("/schedules/best", params={"task": "synthetic"}).json()
    studies = {t["study"] for item in body["items"] for t in item["trials"]}
    assert studies == {mine}
    other = other_api.get("/schedules/best", params={"task": "synthetic"}).json()
    assert {t["study"] for item in other["items"] for t in item["trials"]} == {theirs}


def test_minimize_and_maximize_studies_are_ranked_apart(api: Api) -> None:
    acc = _study(api)
    loss = _study(api, objective={"metric": "val_loss"})
    body = api.get("/schedules/best", params={"task": "synthetic"}).json()
    assert _got(body, "maximize") == _naive(api, [acc])
    assert _got(body, "minimize") == _naive(api, [loss])
    directions = [item["direction"] for item in body["items"]]
    assert directions == sorted(directions), "maximize groups first"


def test_unknown_task_is_an_empty_answer(api: Api) -> None:
    _study(api)
    response = api.get("/schedules/best", params={"task": "no-such-task"})
    assert response.status_code == 200
    assert response.json() == {"task": "no-such-task", "items": []}


def test_bad_query_lists_every_problem(api: Api) -> None:
    response = api.get("/schedules/best", params={"task": "", "top": 0})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert {("query", "task"), ("query", "top")} <= locs
    missing = api.get("/schedules/best")
    assert missing.status_code == 422
    assert ["query", "task"] in [e["loc"] for e in missing.json()["errors"]]


def test_needs_a_key(api: Api) -> None:
    assert api.get("/schedules/best", params={"task": "synthetic"}, scope=None).status_code == 401


# ------------------------------------------------ the study leaderboard, complete


def test_leaderboard_shows_each_winners_pytorch_settings(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    body = api.create_study(
        budget={"n_trials": 16, "max_epochs": 3}, search_space={"schedules": SCHEDULES}
    )
    drive(body["name"], outcomes=["COMPLETE"] * 16)
    items = api.get(f"/studies/{body['name']}/schedules").json()["items"]
    expected_class = {
        "step": "StepLR",
        "cosine": "CosineAnnealingLR",
        "cyclic": "CyclicLR",
        "warmup": "LinearLR",
    }
    seen = 0
    for item in items:
        best = item["best"]
        if best is None:
            assert item["settings"] is None
            continue
        seen += 1
        settings, params, lr = item["settings"], best["params"], best["learning_rate"]
        assert settings["scheduler"] == expected_class[item["schedule"]]
        assert item["epochs_trained"] == best["epochs_run"] == 3
        args = settings["args"]
        # Relative values come back absolute, under PyTorch's names.
        if item["schedule"] == "cyclic":
            assert args["max_lr"] == pytest.approx(params["cyclic.max_lr"] * lr)
            assert args["base_lr"] == pytest.approx(lr)
            assert args["step_size_up"] == params["cyclic.step_size"]
        if item["schedule"] == "cosine":
            assert args["eta_min"] == pytest.approx(params["cosine.eta_min"] * lr)
        if item["schedule"] == "step":
            assert args == {"step_size": params["step.step_size"], "gamma": params["step.gamma"]}
            assert settings["call"] == (
                f"StepLR(step_size={params['step.step_size']}, gamma={params['step.gamma']:.6g})"
            )
        if item["schedule"] == "warmup":
            assert args["start_factor"] == params["warmup.start_factor"]
            assert args["total_iters"] == params["warmup.ramp_epochs"]
    assert seen >= 2


def test_importance_says_what_it_rests_on_and_warns_below_the_minimum(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    few = api.create_study(budget={"n_trials": 6, "max_epochs": 2})["name"]
    drive(few, outcomes=["COMPLETE"] * 5 + ["PRUNED"])
    body = api.get(f"/studies/{few}/importance").json()
    assert body["n_trials"] == 5
    assert body["warning"] is not None
    assert "only 5 completed trials" in body["warning"]
    assert body["importances"], "the ranking is still given; the warning says how far to trust it"

    enough = api.create_study(budget={"n_trials": MIN_RELIABLE_TRIALS, "max_epochs": 2})["name"]
    drive(enough, outcomes=["COMPLETE"] * MIN_RELIABLE_TRIALS)
    body = api.get(f"/studies/{enough}/importance").json()
    assert body["n_trials"] == MIN_RELIABLE_TRIALS
    assert body["warning"] is None
