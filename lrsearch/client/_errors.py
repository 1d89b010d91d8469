"""Errors raised by :mod:`lrsearch.client`.

Hierarchy::

    ClientError
    ├── ApiError          the service answered with an RFC 9457 problem (4xx/5xx)
    └── ServiceUnreachableError  the service could not be reached (after retries)
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Root of the errors raised by :mod:`lrsearch.client`."""


class ApiError(ClientError):
    """The service answered with an error; ``problem`` is its RFC 9457 body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        detail = problem.get("detail") or problem.get("title") or "error"
        lines = [f"{status}: {detail}"]
        lines += [f"  {'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in self.errors]
        super().__init__("\n".join(lines))

    @property
    def lease_lost(self) -> bool:
        """The trial is no longer this client's (stale, ended or another client's)."""
        return self.status == 409 and self.type.endswith("trial-lease-lost")


class ServiceUnreachableError(ClientError):
    """The service did not answer (refused, timed out), even after retrying."""
