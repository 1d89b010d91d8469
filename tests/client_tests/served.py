"""A real ``lrsearch serve`` in a subprocess, for the client tests.

Short heartbeat and grace periods, so stale trials are detected in seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from lrsearch import storage

HEARTBEAT_S = 0.5
GRACE_S = 3.0
LRSEARCH = str(Path(sys.executable).parent / "lrsearch")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Served:
    """A running service: its URL, its storage URL, and a submit key of a fresh tenant."""

    url: str
    storage_url: str
    key: str
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a client process needs to reach this service."""
        return {
            **os.environ,
            "LRSEARCH_API_URL": self.url,
            "LRSEARCH_API_KEY": self.key,
            "OMP_NUM_THREADS": "1",
            **extra,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_key(storage_url: str, scope: storage.Scope = "submit", tenant: str | None = None) -> str:
    backend = storage.open_backend(storage_url)
    try:
        _, key = storage.create_key(
            backend, scope=scope, tenant=tenant or f"tenant-{uuid.uuid4().hex[:8]}"
        )
    finally:
        backend.dispose()
    return key


@contextmanager
def serve(storage_url: str, log: Path) -> Iterator[Served]:
    """Start ``lrsearch serve`` on a free port; stop it on exit."""
    port = free_port()
    env = {
        **os.environ,
        "LRSEARCH_STORAGE": storage_url,
        "LRSEARCH_HEARTBEAT_S": str(HEARTBEAT_S),
        "LRSEARCH_GRACE_S": str(GRACE_S),
    }
    env.pop("LRSEARCH_AUTH_DISABLED", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [LRSEARCH, "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"lrsearch serve did not start:\n{log.read_text()}")
                time.sleep(0.2)
            yield Served(url=url, storage_url=storage_url, key=new_key(storage_url), log=log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
