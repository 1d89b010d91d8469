"""Pure ASGI middleware: request ids, metrics and last-resort 500s; the body-size limit."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lrsearch.service.errors import BodyTooLargeError, problem_response
from lrsearch.service.metrics import Metrics

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _route_template(scope: Scope) -> str:
    # Set by the router on the scope it was given, which is ours: a bounded label set.
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class RequestContextMiddleware:
    """Gives every request an id, times it, and turns an uncaught exception into a 500.

    The id is the client's ``X-Request-ID`` when it looks like one (8-64 of
    ``[A-Za-z0-9._-]``), else a fresh UUID; it is stored in ``scope["state"]``
    for the error handlers and sent back as ``X-Request-ID`` on every response.
    An exception no handler took is logged with its traceback and the request
    id; the client gets a problem+json 500 that carries only the id.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = given if given and _CLIENT_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception(
                "unhandled error in %s %s (request id %s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
            if started:
                raise
            response = problem_response(exc, instance=scope.get("path", ""), request_id=request_id)
            await response(scope, receive, send_with_id)
        finally:
            self.metrics.observe_request(
                method=str(scope.get("method", "")),
                route=_route_template(scope),
                status=status,
                seconds=time.perf_counter() - t0,
            )


class BodyLimitMiddleware:
    """Answers 413 to a body over ``max_bytes``: by ``Content-Length``, or by counting.

    A declared length over the limit is refused before the app runs. Otherwise
    the bytes are counted as the app reads them; past the limit the read
    fails, whatever the app answers is dropped, and the client gets the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLargeError(self.max_bytes)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, too_large)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise too_large
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a failed read; ours replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send, too_large)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: BodyTooLargeError) -> None:
        request_id = scope.get("state", {}).get("request_id")
        response = problem_response(exc, instance=scope.get("path", ""), request_id=request_id)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
