"""Errors raised by :mod:`service`, and the one mapping of every error to HTTP.

Hierarchy of the service's own errors::

    ServiceError
    ├── AuthenticationError       401  no API key, or one that is unknown or revoked
    ├── PermissionDeniedError     403  the key's scope does not allow the operation
    ├── BadCursorError            422  a pagination cursor that this service never issued
    ├── ImportanceUnavailableError 409 too few completed trials to rank parameters
    └── BodyTooLargeError         413  a request body over ``max_body_bytes``

:func:`problem_for` turns these, the domain errors of :mod:`search_space` and
:mod:`storage`, and the framework's own (request validation, unknown route) into
an RFC 9457 problem. Anything it does not know is a 500 whose body says nothing
but the request id; the traceback goes to the log.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from lrsearch import storage
from lrsearch.search_space import ConfigError, DefinitionError, Problem, SearchSpaceError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:lrsearch:problem:"


class ServiceError(Exception):
    """Root of the errors raised by :mod:`service` itself."""


class AuthenticationError(ServiceError):
    """The request carries no API key, or one that is malformed, unknown or revoked."""


class PermissionDeniedError(ServiceError):
    """The API key is valid but its scope does not cover the operation."""


class BadCursorError(ServiceError):
    """A pagination cursor that was not issued by this service."""


class ImportanceUnavailableError(ServiceError):
    """Parameter importance cannot be computed yet (too few completed trials)."""


class BodyTooLargeError(ServiceError):
    """The request body is larger than the service accepts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body exceeds the limit of {limit} bytes")


@dataclass(frozen=True)
class ProblemInfo:
    """What the response to an error says: RFC 9457 members plus our ``errors`` list."""

    status: int
    slug: str
    detail: str
    errors: list[dict[str, Any]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return http.HTTPStatus(self.status).phrase

    @property
    def type(self) -> str:
        return _TYPE_PREFIX + self.slug


def _field_errors(problems: tuple[Problem, ...]) -> list[dict[str, Any]]:
    return [{"loc": list(p.loc), "msg": p.msg} for p in problems]


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [p if isinstance(p, int) else str(p) for p in e["loc"]], "msg": str(e["msg"])}
        for e in exc.errors()
    ]


_STORAGE_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (storage.StudyNotFoundError, 404, "study-not-found"),
    (storage.TrialNotFoundError, 404, "trial-not-found"),
    (storage.KeyNotFoundError, 404, "key-not-found"),
    (storage.LeaseLostError, 409, "trial-lease-lost"),
    (storage.NoValueError, 422, "no-value"),
    (storage.ProtocolError, 422, "invalid-report"),
    (storage.StudyAlreadyExistsError, 409, "study-exists"),
    (storage.BudgetExhaustedError, 409, "budget-exhausted"),
    (storage.InvalidStateError, 409, "invalid-state"),
    (storage.LastAdminKeyError, 409, "last-admin-key"),
)


def problem_for(exc: BaseException) -> ProblemInfo:
    """The HTTP problem for an error: the single place errors get status codes.

    Args:
        exc: Any exception raised while handling a request.

    Returns:
        Status, type slug, detail and (for validation errors) the ``{loc, msg}``
        list. Unknown exceptions give a 500 that reveals nothing about them.
    """
    if isinstance(exc, DefinitionError):
        return ProblemInfo(422, "invalid-definition", str(exc), _field_errors(exc.problems))
    if isinstance(exc, ConfigError):
        return ProblemInfo(422, "invalid-configuration", str(exc), _field_errors(exc.problems))
    if isinstance(exc, SearchSpaceError):
        return ProblemInfo(422, "invalid-input", str(exc), _field_errors(exc.problems))
    if isinstance(exc, RequestValidationError):
        errors = _validation_errors(exc)
        return ProblemInfo(
            422, "invalid-request", f"{len(errors)} problem(s) in the request", errors
        )
    if isinstance(exc, storage.InvalidCursorError | BadCursorError):
        errors = [{"loc": ["query", "cursor"], "msg": str(exc)}]
        return ProblemInfo(422, "invalid-cursor", str(exc), errors)
    if isinstance(exc, AuthenticationError):
        return ProblemInfo(401, "unauthenticated", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, PermissionDeniedError):
        return ProblemInfo(403, "forbidden", str(exc))
    if isinstance(exc, ImportanceUnavailableError):
        return ProblemInfo(409, "importance-unavailable", str(exc))
    if isinstance(exc, BodyTooLargeError):
        return ProblemInfo(413, "body-too-large", str(exc))
    for cls, status, slug in _STORAGE_STATUS:
        if isinstance(exc, cls):
            return ProblemInfo(status, slug, str(exc))
    if isinstance(exc, storage.InvalidInputError):
        # The storage's safety net: the API edge should have rejected the value already.
        errors = [{"loc": [], "msg": str(exc)}]
        return ProblemInfo(422, "invalid-value", str(exc), errors)
    if isinstance(exc, storage.StorageUnavailableError):
        return ProblemInfo(503, "storage-unavailable", str(exc), headers={"Retry-After": "5"})
    if isinstance(exc, HTTPException) and exc.status_code == 400:
        # FastAPI's only 400: a body it could not decode (e.g. JSON that is not UTF-8).
        errors = [{"loc": ["body"], "msg": "the body is not valid UTF-8 JSON"}]
        return ProblemInfo(422, "invalid-request", "the request body could not be parsed", errors)
    if isinstance(exc, HTTPException):
        headers = dict(exc.headers or {})
        return ProblemInfo(
            exc.status_code, f"http-{exc.status_code}", str(exc.detail), None, headers
        )
    return ProblemInfo(500, "internal", "unexpected error; the request id identifies it in the log")


def problem_response(exc: BaseException, *, instance: str, request_id: str | None) -> JSONResponse:
    """An ``application/problem+json`` response for ``exc`` (see :func:`problem_for`)."""
    info = problem_for(exc)
    body: dict[str, Any] = {
        "type": info.type,
        "title": info.title,
        "status": info.status,
        "detail": info.detail,
        "instance": instance,
    }
    if request_id is not None:
        body["request_id"] = request_id
    if info.errors is not None:
        body["errors"] = info.errors
    return JSONResponse(
        body, status_code=info.status, headers=dict(info.headers), media_type=PROBLEM_MEDIA_TYPE
    )


def request_id_of(request: Request) -> str | None:
    """The id :class:`service.middleware.RequestContextMiddleware` gave this request."""
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid is not None else None


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for every error class the app registers."""
    return problem_response(exc, instance=request.url.path, request_id=request_id_of(request))


HANDLED: tuple[type[Exception], ...] = (
    ServiceError,
    SearchSpaceError,
    storage.StorageError,
    RequestValidationError,
    HTTPException,
)
"""The exception classes routed to :func:`handle_error`; others reach the middleware as 500s."""
