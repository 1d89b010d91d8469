"""The trial protocol over the real app (TestClient) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lrsearch import storage
from lrsearch.storage._tables import studies
from tests.service_tests.conftest import Api

CLIENT = "host-a:1"


def _study(api: Api, **fields: Any) -> str:
    fields.setdefault("budget", {"n_trials": 3, "max_epochs": 3})
    fields.setdefault("pruner", {"type": "none"})
    return str(api.create_study(**fields)["name"])


def _claim(api: Api, name: str, client_id: str = CLIENT) -> Any:
    return api.post(f"/studies/{name}/trials/claim", json={"client_id": client_id})


def _report(api: Api, name: str, number: int, epoch: int, value: float, **extra: Any) -> Any:
    body = {"client_id": CLIENT, "epoch": epoch, "value": value, **extra}
    return api.post(f"/studies/{name}/trials/{number}/reports", json=body)


def test_claim_gives_params_and_absolute_config(api: Api) -> None:
    name = _study(api, search_space={"schedules": ["cyclic"]})
    response = _claim(api, name)
    assert response.status_code == 201, response.text
    body = response.json()
    params, config = body["params"], body["config"]
    assert params["schedule"] == "cyclic"
    assert config["learning_rate"] == params["learning_rate"]
    # The multiplier sampled by the search space, turned into a learning rate.
    assert config["schedule"]["max_lr"] == pytest.approx(
        params["cyclic.max_lr"] * params["learning_rate"]
    )
    assert body["trial_config"]["schedule"]["max_lr"] == params["cyclic.max_lr"]
    assert body["max_epochs"] == 3
    assert body["heartbeat_s"] > 0
    assert (body["objective"], body["direction"]) == ("val_accuracy", "maximize")


def test_full_trial_records_what_a_worker_records(api: Api) -> None:
    name = _study(api)
    number = _claim(api, name).json()["number"]
    for epoch, value in enumerate([0.5, 0.6, 0.7]):
        response = _report(
            api, name, number, epoch, value, lr=0.1 / (epoch + 1), metrics={"val_loss": 1.0 - value}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"prune": False}
    done = api.post(f"/studies/{name}/trials/{number}/complete", json={"client_id": CLIENT})
    assert done.status_code == 200, done.text
    assert done.json() == {"number": number, "state": "COMPLETE", "value": 0.7}
    detail = api.get(f"/studies/{name}/trials/{number}").json()
    assert detail["state"] == "COMPLETE"
    assert detail["lr_curve"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    frozen = storage.load_optuna_study(api.backend, api.record(name)).trials[number]
    assert frozen.intermediate_values == {0: 0.5, 1: 0.6, 2: 0.7}
    assert frozen.user_attrs["worker"] == CLIENT
    assert frozen.user_attrs["metrics"][1] == {
        "epoch": 1,
        "val_loss": pytest.approx(0.4),
        "val_accuracy": 0.6,
        "lr": 0.05,
    }


def test_repeated_report_is_idempotent(api: Api) -> None:
    name = _study(api)
    number = _claim(api, name).json()["number"]
    first = _report(api, name, number, 0, 0.5, lr=0.1)
    again = _report(api, name, number, 0, 0.5, lr=0.1)
    assert first.json() == again.json() == {"prune": False}
    api.post(f"/studies/{name}/trials/{number}/complete", json={"client_id": CLIENT})
    frozen = storage.load_optuna_study(api.backend, api.record(name)).trials[number]
    assert frozen.intermediate_values == {0: 0.5}
    assert frozen.user_attrs["lr_curve"] == [0.1]
    assert len(frozen.user_attrs["metrics"]) == 1


def test_pruned_trial_ends_pruned_and_repeat_says_prune_again(api: Api) -> None:
    # Median pruner with no warm-up: after 1 startup... use a threshold pruner-like
    # setup: five complete trials at 0.9, then a trial at 0.1 must be pruned.
    name = _study(
        api,
        budget={"n_trials": 7, "max_epochs": 3},
        # The plain median pruner: a sampled warm-up or cyclic trial would otherwise
        # (rightly) be spared at epoch 0 by the schedule-aware rule.
        pruner={"type": "median", "min_epochs": 1, "schedule_aware": False},
    )
    for _ in range(5):
        number = _claim(api, name).json()["number"]
        for epoch in range(3):
            assert _report(api, name, number, epoch, 0.9).json() == {"prune": False}
        api.post(f"/studies/{name}/trials/{number}/complete", json={"client_id": CLIENT})
    number = _claim(api, name).json()["number"]
    assert _report(api, name, number, 0, 0.1).json() == {"prune": True}
    assert api.get(f"/studies/{name}/trials/{number}").json()["state"] == "PRUNED"
    # A resent report (its answer was lost) gets the same answer.
    assert _report(api, name, number, 0, 0.1).json() == {"prune": True}
    # The trial is over: a next epoch is refused.
    late = _report(api, name, number, 1, 0.1)
    assert late.status_code == 409
    assert late.headers["content-type"].startswith("application/problem+json")


def test_204_when_budget_is_taken(api: Api) -> None:
    name = _study(api, budget={"n_trials": 2, "max_epochs": 1})
    assert _claim(api, name).status_code == 201
    assert _claim(api, name, "host-b:2").status_code == 201
    response = _claim(api, name, "host-c:3")
    assert response.status_code == 204
    assert response.content == b""


def test_204_when_paused(api: Api) -> None:
    name = _study(api)
    assert api.post(f"/studies/{name}/pause").status_code == 200
    assert _claim(api, name).status_code == 204


def test_another_tenant_gets_404(api: Api, other_api: Api) -> None:
    name = _study(api)
    number = _claim(api, name).json()["number"]
    assert _claim(other_api, name).status_code == 404
    response = other_api.post(
        f"/studies/{name}/trials/{number}/reports",
        json={"client_id": CLIENT, "epoch": 0, "value": 0.5},
    )
    assert response.status_code == 404


def test_read_key_is_refused(api: Api) -> None:
    name = _study(api)
    response = api.post(f"/studies/{name}/trials/claim", scope="read", json={"client_id": "x"})
    assert response.status_code == 403


def test_only_the_lease_holder_may_report_or_finish(api: Api) -> None:
    name = _study(api)
    number = _claim(api, name).json()["number"]
    path = f"/studies/{name}/trials/{number}"
    intruder = {"client_id": "host-z:9"}
    for action, body in [
        ("reports", {**intruder, "epoch": 0, "value": 0.3}),
        ("heartbeat", intruder),
        ("complete", {**intruder, "value": 0.3}),
        ("fail", {**intruder, "error": "no"}),
        ("release", intruder),
    ]:
        response = api.post(f"{path}/{action}", json=body)
        assert response.status_code == 409, (action, response.text)
        assert response.json()["type"].endswith("trial-lease-lost")
    assert api.get(path).json()["state"] == "RUNNING"
    assert api.post(f"{path}/heartbeat", json={"client_id": CLIENT}).json() == {"alive": True}


def test_unknown_trial_is_404(api: Api) -> None:
    name = _study(api)
    response = _report(api, name, 42, 0, 0.5)
    assert response.status_code == 404


def test_fail_records_the_error_and_is_not_retried(api: Api) -> None:
    name = _study(api)
    number = _claim(api, name).json()["number"]
    path = f"/studies/{name}/trials/{number}"
    response = api.post(f"{path}/fail", json={"client_id": CLIENT, "error": "ValueError: boom"})
    assert response.json()["state"] == "FAIL"
    again = api.post(f"{path}/fail", json={"client_id": CLIENT, "error": "ValueError: boom"})
    assert again.status_code == 200
    assert api.get(path).json()["error"] == "ValueError: boom"
    counts = api.get(f"/studies/{name}").json()
    assert counts["counts"].get("WAITING", 0) == 0


def test_release_retries_with_the_same_params(api: Api) -> None:
    name = _study(api)
    first = _claim(api, name).json()
    path = f"/studies/{name}/trials/{first['number']}"
    assert api.post(f"{path}/release", json={"client_id": CLIENT}).status_code == 204
    assert api.post(f"{path}/release", json={"client_id": CLIENT}).status_code == 204
    retry = _claim(api, name, "host-b:2").json()
    assert retry["params"] == first["params"]
    assert retry["number"] != first["number"]


def test_complete_without_value_or_report_is_422(api: Api) -> None:
    name = _study(api)
    number = _claim(api, name).json()["number"]
    response = api.post(f"/studies/{name}/trials/{number}/complete", json={"client_id": CLIENT})
    assert response.status_code == 422
    assert response.json()["type"].endswith("no-value")


def test_bad_bodies_list_every_problem(api: Api) -> None:
    name = _study(api)
    number = _claim(api, name).json()["number"]
    response = api.post(
        f"/studies/{name}/trials/{number}/reports",
        content=b'{"client_id": "", "epoch": -1, "value": NaN, "lr": -2}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert {("body", "client_id"), ("body", "epoch"), ("body", "value"), ("body", "lr")} <= locs


def test_unreadable_definition_hands_out_nothing(api: Api) -> None:
    name = _study(api)
    record = api.record(name)
    with api.backend.engine.begin() as conn:
        conn.execute(
            studies.update()
            .where(studies.c.study_id == record.study_id)
            .values(definition="{not json")
        )
    response = _claim(api, name)
    assert response.status_code == 409, response.text
    assert "does not validate" in response.json()["detail"]


def test_a_trial_gone_stale_answers_409_and_is_retried(api: Api) -> None:
    name = _study(api)
    first = _claim(api, name).json()
    number = first["number"]
    assert _report(api, name, number, 0, 0.5).status_code == 200
    time.sleep(0.2)
    swept = storage.sweep_stale_trials(api.backend, grace_s=0.1, study=name)
    assert list(swept.values()) == [[number]]
    late = _report(api, name, number, 1, 0.6)
    assert late.status_code == 409
    assert late.json()["type"].endswith("trial-lease-lost")
    beat = api.post(f"/studies/{name}/trials/{number}/heartbeat", json={"client_id": CLIENT})
    assert beat.status_code == 409
    retry = _claim(api, name, "host-b:2").json()
    assert retry["params"] == first["params"]


def test_a_seeded_study_claimed_over_rest_replays_like_one_worker(api: Api) -> None:
    """The service's sampler takes a sampler slot, not a process id: slot 0 is the seed itself."""
    from lrsearch.search_space import sample_config

    fields: dict[str, Any] = {"sampler": {"type": "tpe", "seed": 7}}
    served = _study(api, **fields)
    twin = _study(api, **fields)
    first = _claim(api, served).json()["params"]
    second = _claim(api, served).json()["params"]
    # What one worker with the definition's seed proposes first, on an identical study.
    record = api.record(twin)
    study = storage.load_optuna_study(api.backend, record, seed_salt=0)
    trial = study.ask()
    sample_config(trial, record.definition)
    assert first == trial.params
    assert second != first


def test_a_confirmation_claimed_over_rest_names_the_trial_it_confirms(api: Api) -> None:
    name = _study(
        api,
        budget={"n_trials": 2, "max_epochs": 2},
        search_space={"schedules": ["step"]},
        confirm={"top_k": 1, "seeds": 1},
    )
    for value in (0.4, 0.8):
        body = _claim(api, name).json()
        assert body["confirmation_of"] is None
        number = body["number"]
        assert _report(api, name, number, 0, value, lr=0.1).status_code == 200
        done = api.post(f"/studies/{name}/trials/{number}/complete", json={"client_id": CLIENT})
        assert done.status_code == 200, done.text
    confirmation = _claim(api, name)
    assert confirmation.status_code == 201, confirmation.text
    body = confirmation.json()
    assert body["confirmation_of"] == 1  # the better of the two search trials
    assert body["params"] == api.get(f"/studies/{name}/trials/1").json()["params"]
    assert _claim(api, name).status_code == 204
