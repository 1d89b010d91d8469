"""The whole path a user takes, as separate processes: a YAML file to the best schedules.

``lrsearch keys create`` -> ``lrsearch serve`` -> ``lrsearch submit study.yaml`` ->
``lrsearch worker`` -> ``lrsearch best`` and ``GET /studies/{name}/schedules``,
on a temporary SQLite file with a real worker training the ``synthetic`` task.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-m", "lrsearch.cli.main"]

STUDY_YAML = """\
name: {name}
task: synthetic
budget: {{n_trials: 8, max_epochs: 3}}
sampler: {{type: random, seed: 3}}
pruner: {{type: none}}
search_space:
  schedules: [step, cosine]
  warmup_epochs: 0
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LRSEARCH_STORAGE": f"sqlite:///{tmp_path / 'svc.db'}"}


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "lrsearch serve did not come up"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.mark.slow
def test_yaml_study_runs_to_a_best_schedules_answer(
    env: dict[str, str], server: str, tmp_path: Path, study_name: str
) -> None:
    key = subprocess.run(
        [*CLI, "keys", "create", "--scope", "submit"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert key.startswith("lrs_")
    assert "\n" not in key
    client_env = {**env, "LRSEARCH_API_URL": server, "LRSEARCH_API_KEY": key}

    study_file = tmp_path / "study.yaml"
    study_file.write_text(STUDY_YAML.format(name=study_name))
    submitted = subprocess.run(
        [*CLI, "submit", str(study_file)],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert submitted.returncode == 0, submitted.stderr

    worker = subprocess.run(
        [*CLI, "worker", "--study", study_name, "--device", "cpu", "--idle-exit", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]

    best = subprocess.run(
        [*CLI, "best", study_name],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert best.returncode == 0, best.stderr
    headers = {"Authorization": f"Bearer {key}"}
    schedules = httpx.get(
        f"{server}/api/v1/studies/{study_name}/schedules", headers=headers, timeout=10
    ).json()
    rows = schedules["items"]
    assert {r["schedule"] for r in rows} == {"step", "cosine"}
    for row in rows:
        if row["best"] is not None:
            # The CLI table shows the same best value the API returns.
            assert f"{row['best']['value']:.4f}" in best.stdout
    summary = httpx.get(f"{server}/api/v1/studies/{study_name}", headers=headers, timeout=10)
    body = summary.json()
    assert body["state"] == "finished"
    assert sum(body["counts"][s] for s in ("COMPLETE", "PRUNED", "FAIL")) == 8
