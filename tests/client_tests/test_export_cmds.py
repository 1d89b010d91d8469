"""``lrsearch export`` and ``lrsearch best --as pytorch`` against a real ``lrsearch serve``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import uuid
from typing import Any

import torch

from lrsearch import Client
from tests.client_tests.served import LRSEARCH, Served


def _run_study(served: Served) -> str:
    name = f"exp-{uuid.uuid4().hex[:10]}"
    with Client(served.url, served.key) as client:
        client.create_study(
            {
                "name": name,
                "task": "external",
                "objective": {"metric": "score", "direction": "minimize"},
                "budget": {"n_trials": 3, "max_epochs": 2},
                "sampler": {"type": "random", "seed": 3},
                "pruner": {"type": "none"},
                "search_space": {"schedules": ["cyclic", "step"]},
            }
        )
        for trial in client.study(name).trials():
            for epoch in trial.epochs():
                trial.report(trial.learning_rate * (2 - epoch), epoch)
    return name


def _cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LRSEARCH, *args], env=served.env(), capture_output=True, text=True, timeout=120
    )


def test_export_csv_and_json(served: Served) -> None:
    name = _run_study(served)
    as_json = _cli(served, "export", name, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows: list[dict[str, Any]] = json.loads(as_json.stdout)
    assert [r["number"] for r in rows] == [0, 1, 2]
    assert all(r["value"] == r["learning_rate"] for r in rows)
    as_csv = _cli(served, "export", name)
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [int(r["number"]) for r in table] == [0, 1, 2]
    assert [float(r["value"]) for r in table] == [r["value"] for r in rows]
    assert list(table[0])[:3] == ["number", "state", "value"]
    # Each schedule's own parameters are columns (empty where another schedule ran).
    assert {"learning_rate", "batch_size"} <= set(table[0])
    assert any(k.startswith(("cyclic.", "step.")) for k in table[0])


def test_export_unknown_study_fails_with_one_line(served: Served) -> None:
    result = _cli(served, "export", "no-such-study")
    assert result.returncode == 1
    assert "404" in result.stderr
    assert "Traceback" not in result.stderr


def test_best_as_pytorch_is_runnable_code_of_the_winner(served: Served) -> None:
    name = _run_study(served)
    result = _cli(served, "best", name, "--as", "pytorch")
    assert result.returncode == 0, result.stderr
    with Client(served.url, served.key) as client:
        best = client.study(name).best()
    assert best is not None
    code = result.stdout
    assert f"trial {best['number']}" in code
    namespace: dict[str, Any] = {"model": torch.nn.Linear(2, 2), "steps_per_epoch": 4}
    exec(code, namespace)
    # The base LR (a warm-up prefix may start lower).
    assert namespace["optimizer"].param_groups[0]["initial_lr"] == best["learning_rate"]
