"""Who is calling: the API key in ``Authorization: Bearer``, its scope and tenant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lrsearch import storage
from lrsearch.service.errors import AuthenticationError, PermissionDeniedError

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `lrsearch keys create`: `Authorization: Bearer lrs_...`.",
)


@dataclass(frozen=True)
class Principal:
    """The caller: the tenant whose studies it sees, and what it may do."""

    tenant: str
    scope: storage.Scope
    key_id: str | None


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller behind the request's bearer key.

    Raises:
        AuthenticationError: No key, or a malformed, unknown or revoked one.
    """
    if request.app.state.settings.auth_disabled:
        return Principal(tenant=storage.DEFAULT_TENANT, scope="admin", key_id=None)
    if credentials is None:
        raise AuthenticationError("an API key is required: send 'Authorization: Bearer <key>'")
    key = storage.verify_key(request.app.state.backend, credentials.credentials)
    if key is None:
        raise AuthenticationError("the API key is invalid or revoked")
    return Principal(tenant=key.tenant, scope=key.scope, key_id=key.key_id)


def requires(scope: storage.Scope) -> Callable[[Principal], Principal]:
    """A dependency that admits callers whose key scope covers ``scope``."""

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not storage.scope_allows(principal.scope, scope):
            raise PermissionDeniedError(
                f"this operation needs a key with scope '{scope}'; yours has '{principal.scope}'"
            )
        return principal

    check.__name__ = f"requires_{scope}"
    return check
