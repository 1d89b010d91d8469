"""Fixtures for the service tests: the real app on a real SQLite file or PostgreSQL.

One app per storage serves the whole session, on a database of its own; every
test gets its own tenant (with a key of each scope) and unique study names.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from lrsearch import storage
from lrsearch.service import Settings, create_app
from tests.service_tests.helpers import DriveTrials, drive_trials
from tests.storage_tests.migration_helpers import fresh_database

with warnings.catch_warnings():
    # Starlette >= 1.x asks for httpx2 and warns once, at import, when it finds httpx.
    # Targeted here instead of in pyproject until the project settles on a client.
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient` is deprecated"
    )
    from starlette.testclient import TestClient as TestClient

API = "/api/v1"


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def service_storage_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A temporary SQLite file, or a new database on the PostgreSQL test server.

    A database of its own, not the shared one: the session's app sweeps stale
    trials of every running study it can see (60 s grace) for as long as the
    session lasts, and other tests leave trials RUNNING on purpose.
    """
    with fresh_database(request.param, tmp_path_factory.mktemp("service")) as url:
        yield url


@dataclass
class Api:
    """A client of the real app, with one key per scope for a tenant of its own."""

    client: TestClient
    backend: storage.Backend
    tenant: str
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, scope: str | None = "admin") -> dict[str, str]:
        return {} if scope is None else {"Authorization": f"Bearer {self.keys[scope]}"}

    def request(self, method: str, path: str, *, scope: str | None, **kwargs: Any) -> Any:
        headers = {**self.headers(scope), **kwargs.pop("headers", {})}
        return self.client.request(method, API + path, headers=headers, **kwargs)

    def get(self, path: str, *, scope: str | None = "read", **kwargs: Any) -> Any:
        return self.request("GET", path, scope=scope, **kwargs)

    def post(self, path: str, *, scope: str | None = "submit", **kwargs: Any) -> Any:
        return self.request("POST", path, scope=scope, **kwargs)

    def delete(self, path: str, *, scope: str | None = "admin", **kwargs: Any) -> Any:
        return self.request("DELETE", path, scope=scope, **kwargs)

    def create_study(self, **fields: Any) -> dict[str, Any]:
        """Create a small synthetic study (unique name unless given); assert the 201."""
        body = {"name": unique_name(), "task": "synthetic", **fields}
        body.setdefault("budget", {"n_trials": 6, "max_epochs": 4})
        body.setdefault("sampler", {"type": "random", "seed": 1})
        response = self.post("/studies", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def record(self, name: str) -> storage.StudyRecord:
        return storage.get_study(self.backend, name, tenant=self.tenant)


def unique_name(prefix: str = "svc") -> str:
    """A study name no other test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_api(client: TestClient, tenant: str | None = None) -> Api:
    """Keys of every scope for a fresh tenant, on a started app."""
    backend: storage.Backend = client.app.state.backend  # type: ignore[attr-defined]
    api = Api(client=client, backend=backend, tenant=tenant or unique_name("tenant"))
    for scope in storage.SCOPES:
        _, api.keys[scope] = storage.create_key(backend, scope=scope, tenant=api.tenant)
    return api


@pytest.fixture(scope="session")
def client(service_storage_url: str) -> Iterator[TestClient]:
    """The real app, started once per storage; tests keep apart by tenant and study name.

    Tests that need other settings build their own app.
    """
    # Counts on every scrape: tests assert /metrics right after running trials.
    settings = Settings(storage=service_storage_url, auth_disabled=False, metrics_refresh_s=0.0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return make_api(client)


@pytest.fixture
def other_api(client: TestClient) -> Api:
    """A second tenant on the same app."""
    return make_api(client)


@pytest.fixture
def drive(api: Api) -> Callable[..., DriveTrials]:
    """Run trials of a study through storage, as a worker would (fabricated metrics)."""

    def run(name: str, **kwargs: Any) -> DriveTrials:
        return drive_trials(api.backend, api.record(name), **kwargs)

    return run
