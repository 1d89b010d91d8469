"""API keys of the caller's tenant (admin scope). Keys for other tenants: the CLI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from lrsearch import storage
from lrsearch.service.deps import Admin, BackendDep
from lrsearch.service.openapi import API_PREFIX, problems
from lrsearch.service.schemas import KeyCreatedOut, KeyCreateIn, KeyOut, key_out

router = APIRouter(prefix=f"{API_PREFIX}/keys", tags=["keys"])


@router.post("", status_code=201, responses=problems(401, 403, 413, 422), summary="Create a key")
def create_key(body: KeyCreateIn, principal: Admin, backend: BackendDep) -> KeyCreatedOut:
    """A new key for the caller's tenant; the response is the only time it is shown."""
    key, plain = storage.create_key(backend, scope=body.scope, tenant=principal.tenant)
    return KeyCreatedOut(**key_out(key).model_dump(), key=plain)


@router.get("", responses=problems(401, 403), summary="List keys")
def list_keys(principal: Admin, backend: BackendDep) -> list[KeyOut]:
    """The tenant's keys, revoked ones included (never their secrets)."""
    return [key_out(k) for k in storage.list_keys(backend, tenant=principal.tenant)]


@router.delete("/{key_id}", responses=problems(401, 403, 404, 409, 422), summary="Revoke a key")
def revoke_key(
    key_id: Annotated[
        str, Path(description="The id shown by the key list.", pattern=r"^[0-9a-f]{1,32}$")
    ],
    principal: Admin,
    backend: BackendDep,
) -> KeyOut:
    """Revoke a key of the tenant for good; requests with it get 401 from now on.

    409 for the tenant's last un-revoked admin key: no one could create another
    one over the API (``lrsearch keys create`` still can).
    """
    revoked = storage.revoke_key(backend, key_id, tenant=principal.tenant, keep_last_admin=True)
    return key_out(revoked)
