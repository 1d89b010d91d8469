"""Tenants are apart: study names are per tenant, and nothing says what another tenant has.

Also the guard that keeps a tenant from locking itself out: its last admin key
cannot be revoked over the API.
"""

from __future__ import annotations

from collections.abc import Callable

from lrsearch import storage
from tests.service_tests.conftest import Api, unique_name
from tests.service_tests.helpers import DriveTrials


def test_another_tenant_can_take_a_used_name_and_the_first_study_is_untouched(
    api: Api, other_api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study(budget={"n_trials": 5, "max_epochs": 3})["name"]
    drive(name, outcomes=["COMPLETE", "PRUNED"])
    before = api.get(f"/studies/{name}").json()

    # Another tenant does not learn that the name is used: it simply gets its study.
    created = other_api.post(
        "/studies", json={"name": name, "task": "synthetic", "budget": {"n_trials": 9}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["definition"]["budget"]["n_trials"] == 9
    # Its own duplicate is a 409 about its own study.
    again = other_api.post("/studies", json={"name": name, "task": "synthetic"})
    assert again.status_code == 409
    assert api.tenant not in again.text

    after = api.get(f"/studies/{name}").json()
    assert after == before
    assert after["definition"]["budget"]["n_trials"] == 5
    theirs = other_api.get(f"/studies/{name}").json()
    assert theirs["counts"]["COMPLETE"] == 0
    assert api.record(name).study_id != other_api.record(name).study_id


def test_the_last_admin_key_of_a_tenant_cannot_revoke_itself(api: Api) -> None:
    admin_id = storage.verify_key(api.backend, api.keys["admin"])
    assert admin_id is not None
    refused = api.delete(f"/keys/{admin_id.key_id}")
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"] == "urn:lrsearch:problem:last-admin-key"
    assert "last admin key" in problem["detail"]
    # Still valid.
    assert api.get("/keys", scope="admin").status_code == 200

    # With a second admin key, the first may go; then the second is the last one.
    second = api.post("/keys", json={"scope": "admin"}, scope="admin").json()
    assert api.delete(f"/keys/{admin_id.key_id}").status_code == 200
    assert api.get("/keys", scope="admin").status_code == 401
    headers = {"Authorization": f"Bearer {second['key']}"}
    last = api.client.delete(f"/api/v1/keys/{second['key_id']}", headers=headers)
    assert last.status_code == 409
    # Revoking a revoked key stays idempotent, and other scopes are never guarded.
    assert api.client.delete(f"/api/v1/keys/{admin_id.key_id}", headers=headers).status_code == 200
    reader = storage.verify_key(api.backend, api.keys["read"])
    assert reader is not None
    assert api.client.delete(f"/api/v1/keys/{reader.key_id}", headers=headers).status_code == 200


def test_the_cli_side_may_still_revoke_the_last_admin_key(api: Api) -> None:
    """Storage callers that reach the database directly are trusted: no guard by default."""
    key = storage.verify_key(api.backend, api.keys["admin"])
    assert key is not None
    assert storage.revoke_key(api.backend, key.key_id, tenant=api.tenant).revoked


def test_names_in_problems_never_come_from_another_tenant(api: Api, other_api: Api) -> None:
    name = api.create_study()["name"]
    for response in (
        other_api.get(f"/studies/{name}"),
        other_api.request("DELETE", f"/studies/{name}", scope="submit"),
        other_api.get(f"/studies/{unique_name()}"),
    ):
        assert response.status_code == 404
        assert api.tenant not in response.text
