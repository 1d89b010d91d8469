"""A thin JSON-over-HTTP layer: base URL, bearer key, problem+json errors, retries."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

from lrsearch.client._errors import ApiError, ServiceUnreachableError
from lrsearch.client._settings import ClientSettings

API_PREFIX = "/api/v1"
# Connection errors are retried with these pauses: enough to ride out a service
# restart, well below the default grace period after which a trial is stale.
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0)


class Http:
    """Requests to one lrsearch service with one API key.

    Args:
        url: The service's base URL; default ``LRSEARCH_API_URL`` or
            ``http://127.0.0.1:8000``.
        key: The API key; default ``LRSEARCH_API_KEY``.
        timeout: Seconds per request.
        transport: An httpx transport (tests pass the app's ASGI transport).
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url or key is None:
            settings = ClientSettings()
            url = url or settings.api_url
            key = key if key is not None else settings.api_key
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.url + API_PREFIX, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self, method: str, path: str, *, retry: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; raise :class:`ApiError` for a 4xx/5xx answer.

        Args:
            method: HTTP method.
            path: Path under ``/api/v1``.
            retry: Retry on connection errors and 503 (only for requests that
                are safe to repeat).
            **kwargs: Passed to :meth:`httpx.Client.request` (``json``, ``params``).

        Raises:
            ApiError: The service answered with an error status.
            ServiceUnreachableError: The service could not be reached.
        """
        pauses = RETRY_PAUSES_S if retry else ()
        for attempt in range(len(pauses) + 1):
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == len(pauses):
                    raise ServiceUnreachableError(
                        f"{method} {self.url}{API_PREFIX}{path}: {exc}"
                    ) from exc
                time.sleep(pauses[attempt])
                continue
            if response.status_code == 503 and attempt < len(pauses):
                time.sleep(pauses[attempt])
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, _problem(response))
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, returning the decoded JSON body (``None`` for 204)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


def segment(value: str) -> str:
    """``value`` as one URL path segment (a study named ``../keys`` stays a study name)."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if set(value) <= {"."} else quoted


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "detail": response.text[:500] or response.reason_phrase}
