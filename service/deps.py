"""The dependencies routes declare, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from lrsearch import storage
from lrsearch.service.auth import Principal, requires
from lrsearch.service.importance import ImportanceCache
from lrsearch.service.settings import Settings


def get_backend(request: Request) -> storage.Backend:
    """The storage opened in the app's lifespan."""
    backend: storage.Backend = request.app.state.backend
    return backend


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_importance_cache(request: Request) -> ImportanceCache:
    """The app's parameter-importance cache."""
    cache: ImportanceCache = request.app.state.importance_cache
    return cache


BackendDep = Annotated[storage.Backend, Depends(get_backend)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ImportanceCacheDep = Annotated[ImportanceCache, Depends(get_importance_cache)]

Reader = Annotated[Principal, Depends(requires("read"))]
Submitter = Annotated[Principal, Depends(requires("submit"))]
Admin = Annotated[Principal, Depends(requires("admin"))]

INT32_MAX = 2**31 - 1
"""Largest value of the INTEGER columns that path and query numbers are compared with."""

# Control characters (NUL above all) can never be in a name, and PostgreSQL refuses
# them in text values: reject them here rather than let the query fail.
NO_CONTROL_CHARS = r"^[^\x00-\x1F\x7F]+$"
StudyName = Annotated[
    str, Path(description="The study's name.", max_length=512, pattern=NO_CONTROL_CHARS)
]


def readable_study(name: StudyName, principal: Reader, backend: BackendDep) -> storage.StudyRecord:
    """The named study of the caller's tenant (read scope); another tenant's is not found."""
    return storage.get_study(backend, name, tenant=principal.tenant)


def writable_study(
    name: StudyName, principal: Submitter, backend: BackendDep
) -> storage.StudyRecord:
    """The named study of the caller's tenant, for callers that may change it (submit scope)."""
    return storage.get_study(backend, name, tenant=principal.tenant)


ReadableStudy = Annotated[storage.StudyRecord, Depends(readable_study)]
WritableStudy = Annotated[storage.StudyRecord, Depends(writable_study)]
