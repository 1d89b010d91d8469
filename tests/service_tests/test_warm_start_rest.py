"""Warm starts over REST, on real SQLite and PostgreSQL.

The source study is played through storage with configurations the test
chooses (the storage tests' helpers), so every expected winner is known; the
warm-started study is created, read and claimed through the real app.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.service_tests.conftest import Api, unique_name
from tests.storage_tests.test_warm_start import _cosine, _definition, _source, _step

STEP_WINNER = _step(0.1, gamma=0.3)
COSINE_WINNER = _cosine(0.05)
RUNS = [
    (_step(0.01), 0.80),
    (STEP_WINNER, 0.91),
    (COSINE_WINNER, 0.85),
    (_cosine(0.5, batch=128), 0.70),
]


def _create(api: Api, warm_start: Any) -> Any:
    return api.post("/studies", json=_definition(unique_name("ws"), warm_start=warm_start))


def test_second_study_starts_with_the_first_studys_winner_per_schedule(api: Api) -> None:
    first = _source(api.backend, RUNS, tenant=api.tenant)
    response = _create(api, {"from": [first.name], "top_k": 1})
    assert response.status_code == 201, response.text
    second = response.json()["name"]

    study = api.get(f"/studies/{second}").json()
    report = study["warm_start"]
    assert report["from"] == [first.name]
    assert report["top_k"] == 1
    # Best first: the step winner (0.91), then the cosine winner (0.85).
    assert [(e["study"], e["value"]) for e in report["enqueued"]] == [
        (first.name, 0.91),
        (first.name, 0.85),
    ]
    for entry, want in zip(report["enqueued"], [STEP_WINNER, COSINE_WINNER], strict=True):
        assert {k: entry["params"][k] for k in want} == pytest.approx(want)
    assert report["skipped"] == []
    assert study["counts"]["WAITING"] == 2

    # They are the study's first trials: the first two claims over REST train them.
    for want in (STEP_WINNER, COSINE_WINNER):
        claim = api.post(f"/studies/{second}/trials/claim", json={"client_id": "rest-1"})
        assert claim.status_code == 201, claim.text
        params = claim.json()["params"]
        assert {k: params[k] for k in want} == pytest.approx(want)


def test_a_study_without_warm_start_reports_none(api: Api) -> None:
    created = api.create_study()
    assert api.get(f"/studies/{created['name']}").json()["warm_start"] is None


def test_another_tenants_study_is_skipped_with_the_reason(api: Api, other_api: Api) -> None:
    theirs = _source(other_api.backend, RUNS, tenant=other_api.tenant)
    response = _create(api, {"from": [theirs.name], "top_k": 1})
    assert response.status_code == 201, response.text
    second = response.json()["name"]

    report = api.get(f"/studies/{second}").json()["warm_start"]
    assert report["enqueued"] == []
    assert report["skipped"] == [{"study": theirs.name, "reason": "no study of that name"}]
    assert api.get(f"/studies/{second}").json()["counts"]["WAITING"] == 0


def test_malformed_warm_start_is_a_422_listing_every_problem(api: Api) -> None:
    name = unique_name("ws")
    body = _definition(name, warm_start={"from": [], "top_k": 0, "size": 3})
    response = api.post("/studies", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    locs = [tuple(e["loc"]) for e in problem["errors"]]
    for field in ("from", "top_k", "size"):
        assert any(loc[-1] == field and "warm_start" in loc for loc in locs), locs
    assert all(e["msg"] for e in problem["errors"])
    assert api.get(f"/studies/{name}").status_code == 404
