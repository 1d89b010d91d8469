"""The entry point of the Python client."""

from __future__ import annotations

from typing import Any

import httpx

from lrsearch.client._http import Http
from lrsearch.client._study import Study


class Client:
    """A client of an lrsearch service.

    Args:
        url: The service's base URL; default ``LRSEARCH_API_URL`` or ``http://127.0.0.1:8000``.
        key: The API key (scope ``submit`` to run trials, ``read`` for results);
            default ``LRSEARCH_API_KEY``.
        timeout: Seconds per request.
        transport: An httpx transport, e.g. to talk to an app in-process.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = Http(url, key, timeout=timeout, transport=transport)

    @property
    def url(self) -> str:
        return self._http.url

    def study(self, name: str) -> Study:
        """The named study (not fetched until used)."""
        return Study(self._http, name)

    def create_study(self, definition: dict[str, Any]) -> Study:
        """Create a study from a definition (as ``lrsearch submit`` does) and return it."""
        body = self._http.json("POST", "/studies", json=definition, retry=False)
        return Study(self._http, str(body["name"]))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
