"""bench/search.py in smoke mode: it runs from the checkout and reports every figure.

A subprocess, as a user runs it: 2 seeds x 8 trials x 3 epochs on a tiny
spirals-mlp, all three methods (random, plain Optuna, lrsearch's defaults).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_search_report() -> ModuleType:
    """bench/search_report.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "bench_search_report", ROOT / "bench" / "search_report.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_search_report"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "search.py"), "--smoke", "--out", str(out)],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads((out / "search.json").read_text())
    summary = payload["summary"]
    assert summary["full_budget_epochs"] == 8 * 3
    assert set(summary["methods"]) == {"random", "optuna", "lrsearch"}
    runs = payload["runs"]
    assert sorted((r["method"], r["seed"]) for r in runs) == sorted(
        (m, s) for m in ("random", "optuna", "lrsearch") for s in (0, 1)
    )
    for run in runs:
        assert len(run["trials"]) == 8
        assert all(1 <= t["epochs"] <= 3 for t in run["trials"])
    # Random without pruning trains every trial to the end.
    assert all(
        t["epochs"] == 3 or t["state"] == "FAIL"
        for r in runs
        if r["method"] == "random"
        for t in r["trials"]
    )
    for row in summary["methods"].values():
        assert len(row["epochs_to_target"]) == 2
        assert set(row["best_at"]) == {"0.10", "0.20", "0.33", "0.50", "1.00"}
        assert len(row["types_with_k_completed"]) == 2
    assert "target (random's median full-budget best)" in done.stdout
    assert ("plot: " in done.stdout) or ("plot skipped" in done.stdout)


def test_the_analysis_counts_epochs_and_targets() -> None:
    bench = load_search_report()
    trial = bench.Trial
    trials = [
        trial(0, "COMPLETE", 0.5, 4, "step"),
        trial(1, "PRUNED", None, 1, "cosine"),
        trial(2, "COMPLETE", 0.7, 4, "cosine"),
        trial(3, "FAIL", None, 2, "cyclic"),
        trial(4, "COMPLETE", 0.6, 4, "step"),
    ]
    assert bench.best_so_far(trials, True) == [(4, 0.5), (5, 0.5), (9, 0.7), (11, 0.7), (15, 0.7)]
    assert bench.epochs_to_target(trials, 0.6, True) == 9
    assert bench.epochs_to_target(trials, 0.8, True) is None
    assert bench.best_at(trials, 8, True) == 0.5
    assert bench.best_at(trials, 3, True) is None
    # Minimising: lower is better.
    assert bench.epochs_to_target(trials, 0.55, False) == 4
