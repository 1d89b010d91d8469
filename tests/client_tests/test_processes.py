"""Client processes against a real ``lrsearch serve``: concurrency, kill -9, SIGTERM.

The example script (examples/plain_pytorch.py, real PyTorch) runs as the
user's code; tests/client_tests/slow_client.py is a client that hangs mid-trial.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lrsearch import Client, storage
from tests.client_tests.served import GRACE_S, REPO, Served

EXAMPLE = REPO / "examples" / "plain_pytorch.py"
SLOW = REPO / "tests" / "client_tests" / "slow_client.py"
BUDGET = REPO / "tests" / "client_tests" / "budget_client.py"
pytestmark = pytest.mark.slow


@pytest.fixture
def client(served: Served) -> Iterator[Client]:
    with Client(served.url, served.key) as c:
        yield c


def _example(served: Served, study: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), study, *extra],
        env=served.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _exact_budget(client: Client, study: str, n_trials: int) -> list[dict[str, Any]]:
    rows = client.study(study).trial_rows()
    states = [r["state"] for r in rows]
    assert "RUNNING" not in states
    assert "WAITING" not in states
    retried = {r["retry_of"] for r in rows if r["retry_of"] is not None}
    counted = [r for r in rows if not (r["state"] == "FAIL" and r["number"] in retried)]
    assert len(counted) == n_trials, rows
    return rows


def _slow_client(served: Served, study: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(SLOW), study],
        env=served.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("CLAIMED"), line + proc.stdout.read()
    return proc, int(line.split()[1])


def _reap(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=30)
    return out


def _create(client: Client, **budget: int) -> str:
    name = f"proc-{uuid.uuid4().hex[:10]}"
    client.create_study(
        {
            "name": name,
            "task": "external",
            "objective": {"metric": "val_accuracy", "direction": "maximize"},
            "budget": {"n_trials": 4, "max_epochs": 3, **budget},
            "sampler": {"type": "random", "seed": 0},
            "pruner": {"type": "median", "min_epochs": 1},
            "search_space": {"schedules": ["step", "cosine", "cyclic"], "warmup_epochs": 0},
        }
    )
    return name


def test_the_example_runs_a_study_end_to_end(served: Served, client: Client) -> None:
    study = f"ex-{uuid.uuid4().hex[:10]}"
    out = _finish(_example(served, study, "--create"))
    assert "best:" in out
    rows = _exact_budget(client, study, 8)
    assert all(r["device"] == "external" for r in rows)
    assert any(r["state"] == "COMPLETE" for r in rows)


def test_two_client_processes_spend_exactly_the_budget(
    served: Served, client: Client, tmp_path: Path
) -> None:
    study = _create(client, n_trials=8, max_epochs=2)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(BUDGET), study, str(go)],
            env=served.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(1.0)  # both imported and waiting
    go.touch()
    outputs = [_finish(p) for p in procs]
    ran = [sorted(int(n) for n in out.split()) for out in outputs]
    rows = _exact_budget(client, study, 8)
    # Every trial ran once, by one of the two processes, and both took part.
    assert sorted(ran[0] + ran[1]) == [r["number"] for r in rows]
    assert ran[0]
    assert ran[1]
    assert len({r["worker"] for r in rows}) == 2


def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)


def test_killed_client_trial_is_retried_after_the_grace_period(
    served: Served, client: Client
) -> None:
    study = _create(client)
    proc, number = _slow_client(served, study)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    _reap(proc)

    def failed_stale() -> bool:
        row = client.study(study).trial_rows()[number]
        return bool(row["state"] == "FAIL")

    _wait_for(failed_stale, GRACE_S * 4 + 10)
    assert time.monotonic() - killed_at >= GRACE_S - 1.0  # not before the grace period
    row = client.study(study).trial_rows()[number]
    assert row["error"].startswith("stale")
    _finish(_example(served, study))
    rows = _exact_budget(client, study, 4)
    retry = next(r for r in rows if r["retry_of"] == number)
    assert {k: retry[k] for k in ("schedule", "learning_rate", "batch_size")} == {
        k: rows[number][k] for k in ("schedule", "learning_rate", "batch_size")
    }


def test_sigterm_releases_the_trial_for_retry(served: Served, client: Client) -> None:
    study = _create(client)
    proc, number = _slow_client(served, study)
    proc.send_signal(signal.SIGTERM)
    out = _reap(proc)
    assert proc.returncode != 0, out  # the KeyboardInterrupt ends the user's script
    row = client.study(study).trial_rows()[number]
    assert row["state"] == "FAIL"
    assert row["error"] == storage.RELEASE_REASON
    # Released at once: the retry is waiting, no grace period needed.
    claimed = client._http.json(
        "POST", f"/studies/{study}/trials/claim", json={"client_id": "test:1"}
    )
    assert (
        claimed["params"] == client._http.json("GET", f"/studies/{study}/trials/{number}")["params"]
    )
