"""``DELETE /api/v1/studies/{name}``: the study and its trials go, and the name is free again."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from lrsearch.storage._tables import trial_results
from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials


def test_a_submit_key_of_the_tenant_deletes_the_study_and_the_name_is_free(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    name = api.create_study()["name"]
    drive(name, outcomes=["COMPLETE", "PRUNED", "FAIL"])
    study_id = api.record(name).study_id

    response = api.request("DELETE", f"/studies/{name}", scope="submit")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"/studies/{name}").status_code == 404
    assert name not in {
        s["name"] for s in api.get("/studies", params={"limit": 500}).json()["items"]
    }
    with api.backend.engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(trial_results.c.study_id == study_id)
        ).scalar_one()
    assert left == 0
    # Deleted for good: a second delete is a 404, and the name can be used again.
    assert api.request("DELETE", f"/studies/{name}", scope="submit").status_code == 404
    recreated = api.post("/studies", json={"name": name, "task": "synthetic"})
    assert recreated.status_code == 201
    assert recreated.json()["counts"]["COMPLETE"] == 0


def test_admin_may_delete(api: Api) -> None:
    name = api.create_study()["name"]
    assert api.request("DELETE", f"/studies/{name}", scope="admin").status_code == 204


def test_a_read_key_is_403_and_another_tenant_404_and_the_study_stays(
    api: Api, other_api: Api
) -> None:
    name = api.create_study()["name"]
    forbidden = api.request("DELETE", f"/studies/{name}", scope="read")
    assert forbidden.status_code == 403
    assert forbidden.json()["type"] == "urn:lrsearch:problem:forbidden"
    for scope in ("submit", "admin"):
        assert other_api.request("DELETE", f"/studies/{name}", scope=scope).status_code == 404
    assert api.get(f"/studies/{name}").status_code == 200
