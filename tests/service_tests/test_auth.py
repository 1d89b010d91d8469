"""API keys, scopes and tenants."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from lrsearch import storage
from lrsearch.service import Settings, create_app
from lrsearch.storage._tables import api_keys
from tests.service_tests.conftest import Api, TestClient, unique_name
from tests.service_tests.helpers import DriveTrials

READ_PATHS = ["", "/trials", "/best", "/schedules", "/importance"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer lrs_nothing",
        "Bearer lrs_0123456789abcdef_" + "x" * 43,
        "Basic dXNlcjpwYXNz",
        "lrs_0123456789abcdef_" + "x" * 43,
    ],
    ids=["missing", "empty", "malformed", "unknown", "basic-scheme", "no-scheme"],
)
def test_missing_or_bad_key_is_401_with_a_bearer_challenge(
    api: Api, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [("GET", "/studies"), ("POST", "/studies"), ("GET", "/keys")]:
        response = api.client.request(method, f"/api/v1{path}", headers=headers, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"] == "urn:lrsearch:problem:unauthenticated"


def test_scopes_are_ordered_read_submit_admin(api: Api) -> None:
    name = api.create_study()["name"]
    body = {"name": unique_name(), "task": "synthetic"}
    # read: GET only.
    assert api.get(f"/studies/{name}", scope="read").status_code == 200
    forbidden = api.post("/studies", json=body, scope="read")
    assert forbidden.status_code == 403
    assert forbidden.json()["type"] == "urn:lrsearch:problem:forbidden"
    assert api.post(f"/studies/{name}/pause", scope="read").status_code == 403
    assert api.post(f"/studies/{name}/trials", json={"params": {}}, scope="read").status_code == 403
    # submit: also create and control, but not keys.
    assert api.post(f"/studies/{name}/pause", scope="submit").status_code == 200
    assert api.get("/keys", scope="submit").status_code == 403
    assert api.post("/keys", json={"scope": "read"}, scope="submit").status_code == 403
    # admin: everything.
    assert api.get(f"/studies/{name}", scope="admin").status_code == 200
    assert api.post(f"/studies/{name}/resume", scope="admin").status_code == 200
    assert api.post("/studies", json=body, scope="admin").status_code == 201


def test_another_tenants_study_is_404_and_never_listed(
    api: Api, other_api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study()["name"]
    drive(name, outcomes=["COMPLETE", "COMPLETE"])
    for path in [*READ_PATHS, "/trials/0"]:
        response = other_api.get(f"/studies/{name}{path}", scope="admin")
        assert response.status_code == 404, path
    for action in ("pause", "resume", "cancel"):
        assert other_api.post(f"/studies/{name}/{action}", scope="admin").status_code == 404
    assert other_api.post(f"/studies/{name}/trials", json={"params": {}}).status_code == 404
    listed = other_api.get("/studies", params={"limit": 500}).json()["items"]
    assert name not in {s["name"] for s in listed}
    # The owner still sees it, untouched.
    assert api.get(f"/studies/{name}").json()["control_state"] == "running"


def test_keys_are_stored_hashed(api: Api) -> None:
    key, plain = storage.create_key(api.backend, scope="read", tenant=api.tenant)
    assert plain.startswith(f"lrs_{key.key_id}_")
    with api.backend.engine.connect() as conn:
        stored = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key.key_id)).one()
    secret = plain.split("_", 2)[2]
    assert secret not in stored.key_hash
    assert len(stored.key_hash) == 64
    assert storage.verify_key(api.backend, plain) == key
    assert storage.verify_key(api.backend, plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None


def test_keys_endpoint_creates_lists_and_revokes(api: Api) -> None:
    created = api.post("/keys", json={"scope": "read"}, scope="admin")
    assert created.status_code == 201
    new = created.json()
    assert new["tenant"] == api.tenant
    assert new["scope"] == "read"
    headers = {"Authorization": f"Bearer {new['key']}"}
    assert api.client.get("/api/v1/studies", headers=headers).status_code == 200
    listed = api.get("/keys", scope="admin").json()
    assert new["key_id"] in {k["key_id"] for k in listed}
    assert all("key" not in k for k in listed)
    assert all(k["tenant"] == api.tenant for k in listed)
    revoked = api.delete(f"/keys/{new['key_id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True
    assert api.client.get("/api/v1/studies", headers=headers).status_code == 401
    assert api.delete("/keys/0000000000000000").status_code == 404


def test_an_admin_cannot_touch_another_tenants_keys(api: Api, other_api: Api) -> None:
    other_key = other_api.post("/keys", json={"scope": "read"}, scope="admin").json()
    assert api.delete(f"/keys/{other_key['key_id']}").status_code == 404
    assert other_key["key_id"] not in {k["key_id"] for k in api.get("/keys", scope="admin").json()}
    assert api.post("/keys", json={"scope": "owner"}, scope="admin").status_code == 422


def test_auth_can_be_disabled_explicitly_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(storage=f"sqlite:///{tmp_path / 'open.db'}", auth_disabled=True)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        name = unique_name()
        created = client.post("/api/v1/studies", json={"name": name, "task": "synthetic"})
        assert created.status_code == 201
        assert client.get(f"/api/v1/studies/{name}").status_code == 200
    assert any("NOT checked" in r.getMessage() for r in caplog.records)
    backend = storage.open_backend(settings.storage)
    try:
        assert storage.get_study(backend, name).tenant == storage.DEFAULT_TENANT
    finally:
        backend.dispose()


def test_auth_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LRSEARCH_AUTH_DISABLED", raising=False)
    assert Settings().auth_disabled is False
    monkeypatch.setenv("LRSEARCH_AUTH_DISABLED", "1")
    assert Settings().auth_disabled is True
