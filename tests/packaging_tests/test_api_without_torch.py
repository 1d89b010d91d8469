"""The API image has no torch: ``lrsearch serve`` must run without it.

The base install (``pip install .``, Dockerfile.api) leaves out the ``worker``
extra. Here torch is made unimportable in a real ``lrsearch serve`` process
(a meta-path finder refuses it, as if it were not installed), and the service
answers its health check, creates a study, lists it and serves the dashboard;
``lrsearch worker`` then says which extra to install.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lrsearch import storage

REPO = Path(__file__).resolve().parents[2]
NO_TORCH = """
import sys
from importlib.abc import MetaPathFinder

class NoTorch(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (the API image has no torch)")
        return None

sys.meta_path.insert(0, NoTorch())
from lrsearch.cli.main import app
app(sys.argv[1:], prog_name="lrsearch")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lrsearch_without_torch(
    args: list[str], env: dict[str, str], **kwargs: object
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", NO_TORCH, *args],
        cwd=REPO,
        env={**os.environ, **env},
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_serve_runs_without_torch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    backend = storage.open_backend(url)
    try:
        _, key = storage.create_key(backend, scope="admin")
    finally:
        backend.dispose()
    port = _free_port()
    process = _lrsearch_without_torch(
        ["serve", "--port", str(port)],
        {"LRSEARCH_STORAGE": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1].decode()[-3000:]
                assert time.monotonic() < deadline, "the service did not come up"
                time.sleep(0.2)
        assert health.status_code == 200
        created = httpx.post(
            f"{base}/api/v1/studies",
            json={"name": "api-only", "task": "synthetic"},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        listed = httpx.get(f"{base}/api/v1/studies", headers=headers, timeout=30).json()
        assert "api-only" in str(listed)
        assert httpx.get(f"{base}/", timeout=30).status_code == 200
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert "Traceback" not in err.decode(), err.decode()[-3000:]


def test_worker_without_torch_names_the_extra(tmp_path: Path) -> None:
    process = _lrsearch_without_torch(
        ["worker", "--idle-exit", "0"],
        {"LRSEARCH_STORAGE": f"sqlite:///{tmp_path / 'w.db'}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err.decode()[-3000:]
    assert "pip install 'lrsearch[worker]'" in err.decode()
