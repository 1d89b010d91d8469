"""API keys: created once, stored hashed, checked on every request.

A key reads ``lrs_<key_id>_<secret>``. Only ``sha256(secret)`` is stored, in
``lrsearch_api_keys``; the whole key is shown once, when it is created. Scopes
are ordered: ``admin`` implies ``submit``, which implies ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal, get_args

import sqlalchemy as sa

from lrsearch.storage._clock import db_now
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import StorageError
from lrsearch.storage._studies import DEFAULT_TENANT
from lrsearch.storage._tables import api_keys

Scope = Literal["read", "submit", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
KEY_PREFIX = "lrs"
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

_KEY_RE = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{20,128}})$")
# Compared against when the key id is unknown, so both paths take the same time.
_DUMMY_HASH = hashlib.sha256(b"lrsearch-no-such-key").hexdigest()


class KeyNotFoundError(StorageError):
    """No API key has that id."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"API key {key_id!r} not found")


@dataclass(frozen=True)
class ApiKey:
    """What is stored about a key (never its secret)."""

    key_id: str
    scope: Scope
    tenant: str
    created_at: float
    revoked: bool

    def allows(self, needed: Scope) -> bool:
        """Whether this key's scope covers ``needed`` (admin > submit > read)."""
        return scope_allows(self.scope, needed)


def scope_allows(held: Scope, needed: Scope) -> bool:
    """Whether a key of scope ``held`` may do what needs scope ``needed``."""
    return SCOPES.index(held) >= SCOPES.index(needed)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row_to_key(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        key_id=str(m["key_id"]),
        scope=m["scope"],
        tenant=str(m["tenant"]),
        created_at=float(m["created_at"]),
        revoked=bool(m["revoked"]),
    )


def create_key(
    backend: Backend, *, scope: Scope, tenant: str = DEFAULT_TENANT
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plain text, which is not stored anywhere.

    Args:
        backend: The storage to write the key to.
        scope: ``read``, ``submit`` or ``admin``.
        tenant: The tenant whose studies the key sees and creates.

    Raises:
        ValueError: ``scope`` or ``tenant`` is not valid (a programming error:
            callers validate user input first).
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {list(SCOPES)}")
    if not re.match(TENANT_PATTERN, tenant):
        raise ValueError(f"invalid tenant name {tenant!r}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    with backend.engine.begin() as conn:
        now = db_now(conn)
        conn.execute(
            api_keys.insert().values(
                key_id=key_id,
                key_hash=_hash(secret),
                scope=scope,
                tenant=tenant,
                created_at=now,
                revoked=False,
            )
        )
    key = ApiKey(key_id=key_id, scope=scope, tenant=tenant, created_at=now, revoked=False)
    return key, f"{KEY_PREFIX}_{key_id}_{secret}"


def verify_key(backend: Backend, plain: str) -> ApiKey | None:
    """The key that ``plain`` is, or ``None`` if it is malformed, unknown or revoked."""
    match = _KEY_RE.match(plain)
    if match is None:
        return None
    key_id, secret = match.groups()
    with backend.engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    stored = str(row._mapping["key_hash"]) if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(stored, _hash(secret)) or row is None:
        return None
    key = _row_to_key(row)
    return None if key.revoked else key


class LastAdminKeyError(StorageError):
    """Revoking this key would leave its tenant without an un-revoked admin key."""

    def __init__(self, key_id: str, tenant: str) -> None:
        self.key_id = key_id
        self.tenant = tenant
        super().__init__(
            f"API key {key_id!r} is the last admin key of tenant {tenant!r}; create another "
            "admin key before revoking it"
        )


def list_keys(backend: Backend, *, tenant: str | None = None) -> list[ApiKey]:
    """Every key (revoked ones too), oldest first; only ``tenant``'s when given."""
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    with backend.engine.connect() as conn:
        return [_row_to_key(r) for r in conn.execute(query)]


def revoke_key(
    backend: Backend, key_id: str, *, tenant: str | None = None, keep_last_admin: bool = False
) -> ApiKey:
    """Revoke a key for good (idempotent); ``tenant`` (if given) hides other tenants' keys.

    Args:
        backend: The storage.
        key_id: The key to revoke.
        tenant: Only a key of this tenant may be revoked.
        keep_last_admin: Refuse to revoke the tenant's last un-revoked admin key
            (the API sets it: over HTTP, no one could create another one; the
            CLI, which writes to the database directly, may still do it).

    Raises:
        KeyNotFoundError: No key has that id (in that tenant).
        LastAdminKeyError: ``keep_last_admin`` and the key is the tenant's last admin key.
    """
    where = [api_keys.c.key_id == key_id]
    if tenant is not None:
        where.append(api_keys.c.tenant == tenant)
    with backend.engine.begin() as conn:
        if keep_last_admin:
            _check_not_last_admin(conn, key_id, where)
        result = conn.execute(api_keys.update().where(*where).values(revoked=True))
        if result.rowcount == 0:
            raise KeyNotFoundError(key_id)
        row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).one()
    return _row_to_key(row)


def _check_not_last_admin(conn: sa.Connection, key_id: str, where: list[Any]) -> None:
    target = conn.execute(
        sa.select(api_keys.c.scope, api_keys.c.tenant, api_keys.c.revoked).where(*where)
    ).first()
    if target is None or target.scope != "admin" or target.revoked:
        return
    # FOR UPDATE (PostgreSQL) locks the tenant's live admin keys, so that two
    # admins revoking each other at once cannot both succeed and leave none.
    live_admins = conn.execute(
        sa.select(api_keys.c.key_id)
        .where(
            api_keys.c.tenant == target.tenant,
            api_keys.c.scope == "admin",
            api_keys.c.revoked.is_(False),
        )
        .with_for_update()
    ).scalars()
    if set(live_admins) <= {key_id}:
        raise LastAdminKeyError(key_id, str(target.tenant))
