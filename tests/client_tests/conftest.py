"""Fixtures for the client and trial-protocol tests.

The protocol tests reuse the service tests' real app (TestClient) and keys;
the client tests talk to a real ``lrsearch serve`` subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client_tests.served import Served, new_key, serve
from tests.service_tests.conftest import api, client, other_api, service_storage_url
from tests.storage_tests.migration_helpers import fresh_database

__all__ = ["api", "client", "other_api", "service_storage_url"]


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``lrsearch serve`` on a SQLite file or on PostgreSQL, for the session."""
    log = tmp_path_factory.mktemp("served-log") / "serve.log"
    # A database of its own: the service sweeps stale trials with a 3 s grace
    # period, which must never reach trials that other tests' workers run.
    with (
        fresh_database(request.param, tmp_path_factory.mktemp("served")) as url,
        serve(url, log) as served,
    ):
        yield served


@pytest.fixture
def served(server: Served) -> Served:
    """The session's service with a submit key of a tenant of this test's own."""
    return Served(
        url=server.url,
        storage_url=server.storage_url,
        key=new_key(server.storage_url),
        log=server.log,
    )
