"""Inputs that used to reach the database and come back as 500s now get 4xx problems.

Each one is stopped twice: at the API edge (path/query bounds, control
characters, definition bounds), and, should a value slip past, at the storage
boundary, where the engines' ``handle_error`` translation turns the driver's
``DataError`` into :class:`storage.InvalidInputError` (422). Runs on SQLite
and PostgreSQL, where the failures differed (PostgreSQL refuses NUL bytes and
32-bit overflows; SQLite only 64-bit ones).
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lrsearch import storage
from lrsearch.service import Settings, create_app
from tests.service_tests.conftest import Api, TestClient, unique_name

PROBLEM = "application/problem+json"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_problem(response: Any, status: int, loc: list[Any] | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    if loc is not None:
        assert loc in [e["loc"] for e in body["errors"]], body
    return body


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        pytest.param(
            f"/studies?cursor={_cursor('studies:9999999999')}",
            ["query", "cursor"],
            id="10-digit-cursor",
        ),
        pytest.param(
            f"/studies?cursor={_cursor('studies:2147483648')}",
            ["query", "cursor"],
            id="int32-cursor",
        ),
        pytest.param("/studies/a%00b", ["path", "name"], id="nul-in-name"),
        pytest.param("/studies/a%1Fb/trials", ["path", "name"], id="control-char-in-name"),
        pytest.param(
            "/studies/{study}/curves?numbers=2147483648",
            ["query", "numbers"],
            id="int32-curve-number",
        ),
        pytest.param(
            "/studies/{study}/curves?numbers=1,99999999999",
            ["query", "numbers"],
            id="11-digit-curve-number",
        ),
        pytest.param(
            "/studies/{study}/trials/2147483648", ["path", "number"], id="int32-trial-number"
        ),
    ],
)
def test_out_of_range_path_and_query_values_are_422(api: Api, path: str, loc: list[str]) -> None:
    study = api.create_study()["name"]
    assert_problem(api.get(path.format(study=study)), 422, loc)


def test_nul_byte_in_a_key_id_is_422(api: Api) -> None:
    assert_problem(api.delete("/keys/ab%00cd"), 422, ["path", "key_id"])


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64])
def test_sampler_seed_out_of_range_is_422_and_creates_nothing(api: Api, seed: int) -> None:
    name = unique_name()
    response = api.post(
        "/studies", json={"name": name, "task": "synthetic", "sampler": {"seed": seed}}
    )
    assert_problem(response, 422, ["sampler", "seed"])
    assert api.get(f"/studies/{name}").status_code == 404


def test_non_finite_numbers_anywhere_in_a_definition_are_all_listed(api: Api) -> None:
    name = unique_name()
    # Python's json (which the service parses with) accepts NaN and Infinity literals.
    body = json.dumps(
        {
            "name": name,
            "task": "synthetic",
            "pruner": {"percentile": float("inf")},
            "search_space": {
                "schedule_params": {"step": {"gamma": {"low": float("nan"), "high": 0.5}}}
            },
        }
    )
    assert "NaN" in body
    response = api.post("/studies", content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 422)
    locs = [e["loc"] for e in problem["errors"]]
    assert locs == [
        ["pruner", "percentile"],
        ["search_space", "schedule_params", "step", "gamma", "low"],
    ]
    assert api.get(f"/studies/{name}").status_code == 404


def test_the_storage_boundary_turns_data_errors_into_invalid_input(api: Api) -> None:
    """Past the edge, the engine's translation still gives the project's own error."""
    record = api.record(api.create_study()["name"])
    with api.backend.engine.connect() as conn, pytest.raises(storage.InvalidInputError):
        # Beyond 64 bits: refused by both databases (SQLite overflows, PostgreSQL's cast).
        storage.trials_by_number(conn, record, [2**64])
    if api.backend.dialect == "postgresql":
        with pytest.raises(storage.InvalidInputError, match="NUL"):
            storage.get_study(api.backend, "a\x00b")


def test_unreachable_postgresql_raises_storage_unavailable() -> None:
    # Port 1: nothing listens there, so the connection is refused at once.
    engine = storage.make_engine("postgresql+psycopg://root@127.0.0.1:1/none")
    try:
        with pytest.raises(storage.StorageUnavailableError), engine.connect():
            pass
    finally:
        engine.dispose()


def test_a_database_that_went_away_is_503_with_retry_after(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'gone.db'}"
    with TestClient(create_app(Settings(storage=url))) as client:
        backend: storage.Backend = client.app.state.backend  # type: ignore[attr-defined]
        assert client.get("/healthz").status_code == 200
        backend.engine.dispose()
        shutil.rmtree(folder)  # the next connection cannot open the file
        response = client.get("/healthz")
        body = assert_problem(response, 503)
        assert body["type"] == "urn:lrsearch:problem:storage-unavailable"
        assert response.headers["retry-after"] == "5"
