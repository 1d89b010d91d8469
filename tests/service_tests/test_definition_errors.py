"""Bad study definitions: each gets a 422 naming the field, and nothing is created."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service_tests.conftest import Api

NAME = "bad-definition"

# (case id, definition fields on top of a valid name and task, expected loc of one problem)
CASES: list[tuple[str, dict[str, Any], list[str | int]]] = [
    ("name-missing", {"name": None}, ["name"]),
    ("task-missing", {"task": None}, ["task"]),
    ("name-empty", {"name": ""}, ["name"]),
    ("name-with-space", {"name": "my study"}, ["name"]),
    ("name-too-long", {"name": "n" * 200}, ["name"]),
    ("name-not-string", {"name": 123}, ["name"]),
    ("name-with-slash", {"name": "a/b"}, ["name"]),
    ("task-unknown", {"task": "imagenet-resnet"}, ["task"]),
    ("task-empty", {"task": ""}, ["task"]),
    ("unknown-top-level-field", {"epochs": 10}, ["epochs"]),
    ("objective-not-object", {"objective": "max"}, ["objective"]),
    ("objective-metric", {"objective": {"metric": "accuracy"}}, ["objective", "metric"]),
    ("objective-direction", {"objective": {"direction": "up"}}, ["objective", "direction"]),
    ("budget-zero-trials", {"budget": {"n_trials": 0}}, ["budget", "n_trials"]),
    ("budget-trials-text", {"budget": {"n_trials": "many"}}, ["budget", "n_trials"]),
    ("budget-too-many-trials", {"budget": {"n_trials": 10**6}}, ["budget", "n_trials"]),
    ("budget-negative-epochs", {"budget": {"max_epochs": -1}}, ["budget", "max_epochs"]),
    ("budget-fractional-epochs", {"budget": {"max_epochs": 2.5}}, ["budget", "max_epochs"]),
    ("budget-retries", {"budget": {"max_retries": 11}}, ["budget", "max_retries"]),
    ("budget-unknown-field", {"budget": {"trials": 5}}, ["budget", "trials"]),
    ("sampler-type", {"sampler": {"type": "grid"}}, ["sampler", "type"]),
    ("sampler-seed", {"sampler": {"seed": "abc"}}, ["sampler", "seed"]),
    ("pruner-type", {"pruner": {"type": "aggressive"}}, ["pruner", "type"]),
    ("pruner-min-epochs-zero", {"pruner": {"min_epochs": 0}}, ["pruner", "min_epochs"]),
    (
        "pruner-min-epochs-over-budget",
        {"budget": {"max_epochs": 3}, "pruner": {"min_epochs": 5}},
        ["pruner", "min_epochs"],
    ),
    ("pruner-percentile", {"pruner": {"percentile": 100}}, ["pruner", "percentile"]),
    ("schedules-empty", {"search_space": {"schedules": []}}, ["search_space", "schedules"]),
    (
        "schedules-unknown",
        {"search_space": {"schedules": ["linear"]}},
        ["search_space", "schedules", 0],
    ),
    (
        "schedules-duplicate",
        {"search_space": {"schedules": ["step", "step"]}},
        ["search_space", "schedules"],
    ),
    (
        "learning-rate-reversed",
        {"search_space": {"learning_rate": {"low": 0.1, "high": 0.01}}},
        ["search_space", "learning_rate"],
    ),
    (
        "learning-rate-log-zero",
        {"search_space": {"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}},
        ["search_space", "learning_rate"],
    ),
    (
        "learning-rate-missing-high",
        {"search_space": {"learning_rate": {"low": 0.01}}},
        ["search_space", "learning_rate", "high"],
    ),
    ("batch-size-zero", {"search_space": {"batch_size": [0, 32]}}, ["search_space", "batch_size"]),
    ("batch-size-empty", {"search_space": {"batch_size": []}}, ["search_space", "batch_size"]),
    (
        "dropout-one",
        {"search_space": {"dropout": {"low": 0.0, "high": 1.0}}},
        ["search_space", "dropout"],
    ),
    (
        "weight-init-unknown",
        {"search_space": {"weight_init": ["zeros"]}},
        ["search_space", "weight_init", 0],
    ),
    (
        "warmup-too-long",
        {"budget": {"max_epochs": 4}, "search_space": {"warmup_epochs": {"low": 0, "high": 6}}},
        ["search_space", "warmup_epochs"],
    ),
    (
        "warmup-negative",
        {"search_space": {"warmup_epochs": -2}},
        ["search_space", "warmup_epochs"],
    ),
    (
        "weight-decay-negative",
        {"search_space": {"weight_decay": {"low": -0.1, "high": 0.1}}},
        ["search_space", "weight_decay"],
    ),
    (
        "schedule-params-for-absent-schedule",
        {
            "search_space": {
                "schedules": ["step"],
                "schedule_params": {"cosine": {"eta_min": {"low": 0.0, "high": 0.1}}},
            }
        },
        ["search_space", "schedule_params", "cosine"],
    ),
    (
        "schedule-params-unknown-param",
        {"search_space": {"schedule_params": {"step": {"decay": {"low": 0.1, "high": 0.5}}}}},
        ["search_space", "schedule_params", "step", "decay"],
    ),
    (
        "schedule-params-out-of-bounds",
        {"search_space": {"schedule_params": {"step": {"gamma": {"low": 0.5, "high": 2.0}}}}},
        ["search_space", "schedule_params", "step", "gamma", "high"],
    ),
]


def _definition(fields: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": NAME, "task": "synthetic"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def test_there_are_at_least_25_distinct_cases() -> None:
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize(("fields", "loc"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_definition_is_a_422_naming_the_field(
    api: Api, fields: dict[str, Any], loc: list[str | int]
) -> None:
    body = _definition(fields)
    response = api.post("/studies", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["type"] == "urn:lrsearch:problem:invalid-definition"
    locs = [e["loc"] for e in problem["errors"]]
    assert any(found[: len(loc)] == loc for found in locs), locs
    assert all(e["msg"] for e in problem["errors"])
    # Nothing half-created.
    name = body.get("name")
    if isinstance(name, str) and name and "/" not in name:
        assert api.get(f"/studies/{name}").status_code == 404


def test_every_problem_is_listed_at_once(api: Api) -> None:
    body = {
        "name": "two problems",
        "task": "synthetic",
        "budget": {"n_trials": 0},
        "sampler": {"type": "grid"},
    }
    problem = api.post("/studies", json=body).json()
    locs = {tuple(e["loc"]) for e in problem["errors"]}
    assert {("name",), ("budget", "n_trials"), ("sampler", "type")} <= locs
