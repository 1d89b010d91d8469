"""``lrsearch demo --serve``: a busy port fails before training; the link it prints works."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

DEMO = [sys.executable, "-m", "lrsearch.cli.main", "demo", "--serve"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LRSEARCH_STORAGE"}


def test_a_busy_port_fails_at_once_before_any_training(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [*DEMO, "--port", str(port)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"error: cannot serve on 127.0.0.1:{port} (" in result.stderr
    assert "choose another with --port" in result.stderr
    # Nothing was created or trained: no study, not even the storage file.
    assert not (tmp_path / "lrsearch.db").exists()
    assert result.stdout == ""
    assert time.monotonic() - started < 60


def _lines(stream: IO[str], out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)


@pytest.mark.slow
def test_the_printed_link_carries_a_read_key_for_the_served_demo(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with subprocess.Popen(
        [*DEMO, "--port", str(port), "--trials", "2"],
        cwd=tmp_path,
        env={**_env(), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            line = ""
            while not line.startswith("dashboard:"):
                line = lines.get(timeout=240)
            link = line.split()[1]
            match = re.fullmatch(
                rf"http://127\.0\.0\.1:{port}/#/study/(demo-digits-[\d-]+)\?key=(\S+)", link
            )
            assert match, link
            study, key = match.groups()
            headers = {"Authorization": f"Bearer {key}"}
            api = f"http://127.0.0.1:{port}/api/v1"
            deadline = time.monotonic() + 60
            while True:
                try:
                    answer = httpx.get(f"{api}/studies/{study}", headers=headers)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the service did not start"
                    time.sleep(0.2)
            assert answer.status_code == 200, answer.text
            assert answer.json()["finished"] == 2
            # A read key: it cannot change the study.
            paused = httpx.post(f"{api}/studies/{study}/pause", headers=headers)
            assert paused.status_code == 403
        finally:
            process.send_signal(signal.SIGINT)
            _wait_or_kill(process)
            reader.join(timeout=10)


def _wait_or_kill(process: subprocess.Popen[Any]) -> int | None:
    """The exit code, or ``None`` after killing a child that ignored the signal.

    Never blocks for good: leaving a ``with Popen`` block waits without a timeout.
    """
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
