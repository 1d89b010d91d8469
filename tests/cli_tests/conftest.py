"""The real service over HTTP for the CLI tests.

The service runs in uvicorn on a free port of 127.0.0.1 (a real HTTP server on
a temporary SQLite file); the commands run through Typer's test runner with
``LRSEARCH_API_URL`` / ``LRSEARCH_API_KEY`` set as a user would set them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from lrsearch import storage
from lrsearch.service import Settings, create_app
from tests.cli_tests.helpers import Live


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """The real service over HTTP on a temporary SQLite file, with admin and read keys."""
    storage_url = f"sqlite:///{tmp_path / 'cli.db'}"
    backend = storage.open_backend(storage_url)
    _, key = storage.create_key(backend, scope="admin")
    _, read_key = storage.create_key(backend, scope="read")
    backend.dispose()
    config = uvicorn.Config(
        create_app(Settings(storage=storage_url)), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Live(f"http://127.0.0.1:{port}", storage_url, key, read_key)
    server.should_exit = True
    thread.join(timeout=10)
