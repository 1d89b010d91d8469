"""``lrsearch submit``, ``status``, ``best`` and ``keys create`` against a real server.

The service runs in uvicorn on a free port of 127.0.0.1 (a real HTTP server on
a temporary SQLite file); the commands run through Typer's test runner with
``LRSEARCH_API_URL`` / ``LRSEARCH_API_KEY`` set as a user would set them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lrsearch import storage
from lrsearch.cli.main import app
from tests.cli_tests.helpers import Live, run, write
from tests.service_tests.helpers import drive_trials

REPO = Path(__file__).resolve().parents[2]


YAML_STUDY = """\
name: {name}
task: synthetic
budget: {{n_trials: 4, max_epochs: 3}}
sampler: {{type: random, seed: 2}}
search_space:
  schedules: [step, cosine]
"""


def test_submit_yaml_then_status_and_best(live: Live, tmp_path: Path) -> None:
    file = write(tmp_path / "study.yaml", YAML_STUDY.format(name="cli-yaml"))
    submitted = run(live, "submit", str(file))
    assert submitted.exit_code == 0, submitted.output
    assert "created study cli-yaml: task synthetic, 4 trials" in submitted.stdout

    before = run(live, "status", "cli-yaml")
    assert before.exit_code == 0
    assert "[" + "-" * 30 + "] 0/4 finished" in before.stdout

    backend = storage.open_backend(live.storage_url)
    try:
        record = storage.get_study(backend, "cli-yaml")
        drive_trials(backend, record, outcomes=["COMPLETE", "PRUNED", "COMPLETE", "FAIL"])
    finally:
        backend.dispose()
    watched = run(live, "status", "cli-yaml", "--watch", "--interval", "0.1")
    assert watched.exit_code == 0
    line = watched.stdout.strip().splitlines()[-1]
    assert "[" + "#" * 30 + "] 4/4 finished" in line
    assert "pruned 1, failed 1" in line
    assert "finished, best " in line

    table = run(live, "best", "cli-yaml", key=live.read_key)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "val_accuracy, maximize" in lines[0]
    assert lines[1].split()[:4] == ["schedule", "best", "lr", "batch"]
    assert {line.split()[0] for line in lines[3:]} == {"step", "cosine"}


def test_submit_json(live: Live, tmp_path: Path) -> None:
    file = write(tmp_path / "s.json", json.dumps({"name": "cli-json", "task": "synthetic"}))
    result = run(live, "submit", str(file))
    assert result.exit_code == 0, result.output
    assert "created study cli-json" in result.stdout


def test_submit_sends_yaml_scalars_such_as_dates_as_text(live: Live, tmp_path: Path) -> None:
    result = run(
        live, "submit", str(write(tmp_path / "d.yml", "name: 2024-05-01\ntask: synthetic\n"))
    )
    assert result.exit_code == 0, result.output
    assert "created study 2024-05-01" in result.stdout


def test_submit_prints_each_problem_with_its_path_and_exits_2(live: Live, tmp_path: Path) -> None:
    file = write(
        tmp_path / "bad.yaml",
        "name: bad study\ntask: nope\nbudget: {n_trials: 0}\n",
    )
    result = run(live, "submit", str(file))
    assert result.exit_code == 2
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert any(p.startswith("name: ") for p in problems)
    assert any(p.startswith("task: unknown task") for p in problems)
    assert any(p.startswith("budget.n_trials: ") for p in problems)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("s.yaml", "name: [unclosed", "not valid YAML"),
        ("s.json", "{nope", "not valid JSON"),
        ("s.toml", "name = 'x'", "expected a .yaml"),
        ("s.yaml", "- a\n- b\n", "must be a mapping"),
    ],
)
def test_submit_refuses_unreadable_files_with_exit_2(
    tmp_path: Path, filename: str, content: str, message: str
) -> None:
    # Refused before any request: no service needed.
    env = {"LRSEARCH_API_URL": "http://127.0.0.1:9", "LRSEARCH_API_KEY": "x"}
    result = CliRunner().invoke(app, ["submit", str(write(tmp_path / filename, content))], env=env)
    assert result.exit_code == 2
    assert message in result.stderr


def test_request_failures_exit_1_with_the_reason(live: Live, tmp_path: Path) -> None:
    missing = run(live, "status", "no-such-study")
    assert missing.exit_code == 1
    assert "404" in missing.stderr
    file = write(tmp_path / "s.json", json.dumps({"name": "cli-dup", "task": "synthetic"}))
    assert run(live, "submit", str(file)).exit_code == 0
    duplicate = run(live, "submit", str(file))
    assert duplicate.exit_code == 1
    assert "409" in duplicate.stderr
    forbidden = run(live, "submit", str(file), key=live.read_key)
    assert forbidden.exit_code == 1
    assert "403" in forbidden.stderr
    unauthorized = run(live, "status", "cli-dup", key="lrs_bad")
    assert unauthorized.exit_code == 1
    assert "401" in unauthorized.stderr


def test_an_unreachable_service_is_reported(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"LRSEARCH_API_URL": f"http://127.0.0.1:{port}", "LRSEARCH_API_KEY": "x"}
    result = CliRunner().invoke(app, ["status", "x"], env=env)
    assert result.exit_code == 1
    assert "cannot reach the service" in result.stderr


def test_keys_create_prints_only_the_key_on_stdout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    result = CliRunner().invoke(
        app,
        ["keys", "create", "--scope", "submit", "--tenant", "team-a"],
        env={"LRSEARCH_STORAGE": url},
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    assert key.startswith("lrs_")
    assert "shown only this once" in result.stderr
    backend = storage.open_backend(url)
    try:
        found = storage.verify_key(backend, key)
    finally:
        backend.dispose()
    assert found is not None
    assert (found.scope, found.tenant) == ("submit", "team-a")


@pytest.mark.parametrize("args", [["--scope", "owner"], ["--scope", "read", "--tenant", "a b"]])
def test_keys_create_rejects_bad_input(tmp_path: Path, args: list[str]) -> None:
    env = {"LRSEARCH_STORAGE": f"sqlite:///{tmp_path / 'keys.db'}"}
    result = CliRunner().invoke(app, ["keys", "create", *args], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""


@pytest.mark.slow
def test_serve_runs_the_service_on_the_given_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LRSEARCH_STORAGE": f"sqlite:///{tmp_path / 'serve.db'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lrsearch.cli.main", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, "the service did not come up"
                time.sleep(0.2)
        assert response.json() == {"status": "ok", "database": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/studies").status_code == 401
    finally:
        process.terminate()
        process.communicate(timeout=10)
