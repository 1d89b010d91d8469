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


def load_search() -> ModuleType:
    """bench/search.py as a module; it imports its sibling search_report by name."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "search.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_search"] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_the_plain_pruner_arm_differs_only_in_schedule_awareness() -> None:
    from lrsearch.search_space import parse_definition

    bench = load_search()
    args = bench.parse_args(["--trials", "60", "--methods", "lrsearch,lrsearch-plain-pruner"])
    aware = parse_definition(bench._study_raw(args, "lrsearch", 0, "a"))
    plain = parse_definition(bench._study_raw(args, "lrsearch-plain-pruner", 0, "a"))
    assert aware.pruner.schedule_aware is True
    assert plain.pruner.schedule_aware is False
    assert aware.pruner.model_copy(update={"schedule_aware": False}) == plain.pruner
    # Search only: at 60 trials the default would confirm winners and add epochs.
    assert aware.confirm is not None
    assert not aware.confirm.enabled


@pytest.mark.slow
def test_warm_and_cold_second_studies_after_one_first_study(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [
        *("--task", "spirals-mlp", "--task-option", "n_train=256", "--task-option", "n_val=128"),
        *("--methods", "lrsearch-plain-pruner,warm,cold", "--seeds", "1"),
        *("--trials", "8", "--epochs", "3", "--out", str(out)),
    ]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "search.py"), *argv],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads((out / "search.json").read_text())
    first = payload["first_studies"]["0"]
    assert len(first) == 8
    runs = {r["method"]: r for r in payload["runs"]}
    assert set(runs) == {"lrsearch-plain-pruner", "warm", "cold"}
    # The warm study starts with the first study's best trial of each schedule
    # type (top_k 1), best first; the cold one samples from scratch.
    best_of_type: dict[str, float] = {}
    for t in first:
        if t["state"] == "COMPLETE":
            best_of_type[t["schedule"]] = max(best_of_type.get(t["schedule"], -1.0), t["value"])
    ranked = sorted(best_of_type, key=lambda s: -best_of_type[s])
    warm_first = [t["schedule"] for t in runs["warm"]["trials"][: len(ranked)]]
    assert sorted(warm_first) == sorted(ranked)
    ws = payload["summary"]["warm_start"]
    assert ws["first_best"]["0"] == max(best_of_type.values())
    assert set(ws["methods"]) == {"warm", "cold"}
    assert "warm start: epochs a second study needs" in done.stdout
    states = payload["summary"]["methods"]["lrsearch-plain-pruner"]["states_per_schedule"]
    assert sum(c["trials"] for c in states.values()) == 8


def test_the_warm_start_figures_count_epochs_to_each_first_best() -> None:
    bench = load_search_report()
    trial, run = bench.Trial, bench.Run
    firsts = {0: [trial(0, "COMPLETE", 0.80, 3, "step"), trial(1, "COMPLETE", 0.90, 3, "cosine")]}
    warm = run(
        "warm",
        0,
        1.0,
        [trial(0, "COMPLETE", 0.895, 3, "cosine"), trial(1, "COMPLETE", 0.91, 3, "step")],
    )
    cold = run(
        "cold",
        0,
        1.0,
        [trial(0, "PRUNED", None, 1, "cyclic"), trial(1, "COMPLETE", 0.70, 3, "step")],
    )
    ws = bench.warm_start_summary([warm, cold], firsts, True)
    assert ws["first_best"] == {"0": 0.90}
    assert ws["methods"]["warm"]["to_best"] == [6]
    assert ws["methods"]["warm"]["to_99pct"] == [3]  # 0.895 >= 0.99 * 0.90
    assert ws["methods"]["cold"]["to_best"] == [None]
    assert ws["methods"]["cold"]["best"] == [0.70]
    states = bench.states_per_schedule([warm, cold])
    assert states["cyclic"] == {"trials": 1, "COMPLETE": 0, "PRUNED": 1, "FAIL": 0}
    assert states["step"]["COMPLETE"] == 2


_TINY = ("--task", "spirals-mlp", "--task-option", "n_train=256", "--task-option", "n_val=128")


def _saved_runs(folder: Path, *, epochs: int = 2, seeds: tuple[int, ...] = (0, 1)) -> Path:
    """A search.json of random and plain-Optuna runs, written by hand (no training)."""
    runs = [
        {
            "method": method,
            "seed": seed,
            "seconds": 1.0,
            "trials": [
                {
                    "number": n,
                    "state": "COMPLETE",
                    "value": 0.3 + 0.1 * n + 0.01 * seed + (0.05 if method == "optuna" else 0.0),
                    "epochs": epochs,
                    "schedule": ("step", "cosine")[n % 2],
                    "learning_rate": 0.01,
                }
                for n in range(4)
            ],
        }
        for method in ("random", "optuna")
        for seed in seeds
    ]
    args = {
        "task": "spirals-mlp",
        "task_options": {"n_train": 256, "n_val": 128},
        "trials": 4,
        "epochs": epochs,
        "seed_list": list(seeds),
    }
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps({"args": args, "runs": runs}))
    return folder


def test_reuse_reports_saved_runs_with_the_new_ones_and_checks_they_match(
    tmp_path: Path,
) -> None:
    bench = load_search()
    saved = _saved_runs(tmp_path / "ro")
    common = [*_TINY, "--trials", "4", "--epochs", "2", "--seeds", "2", "--reuse", str(saved)]
    args = bench.parse_args(["--methods", "lrsearch", *common])
    # Reused methods come first, so the target is random's; lrsearch still runs.
    assert args.methods == ["random", "optuna", "lrsearch"]
    assert sorted((r.method, r.seed) for r in args.reused) == [
        ("optuna", 0),
        ("optuna", 1),
        ("random", 0),
        ("random", 1),
    ]
    # A method asked for again is run, not loaded.
    again = bench.parse_args(["--methods", "optuna", *common])
    assert {r.method for r in again.reused} == {"random"}
    # Fewer seeds than saved: only those are loaded.
    one = bench.parse_args(["--methods", "", *common[:-4], "--seeds", "1", "--reuse", str(saved)])
    assert sorted(r.seed for r in one.reused) == [0, 0]


def test_reuse_rejects_runs_of_another_setup_listing_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_search()
    saved = _saved_runs(tmp_path / "ro", epochs=3, seeds=(0,))
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(
            [
                *_TINY,
                "--methods",
                "lrsearch",
                "--trials",
                "4",
                "--epochs",
                "2",
                "--seeds",
                "2",
                "--reuse",
                f"{saved},{tmp_path / 'absent'}",
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "epochs is 3, this run's is 2" in err
    assert "method 'random' has no runs for seeds [1]" in err
    assert "absent/search.json: cannot read its runs" in err
    with pytest.raises(SystemExit):
        bench.parse_args([*_TINY, "--methods", "", "--trials", "4", "--epochs", "2"])


@pytest.mark.slow
def test_reuse_runs_only_the_new_method_and_reports_all_three(tmp_path: Path) -> None:
    saved = _saved_runs(tmp_path / "ro", seeds=(0,))
    out = tmp_path / "out"
    argv = [*_TINY, "--methods", "lrsearch", "--seeds", "1", "--trials", "4", "--epochs", "2"]
    argv += ["--reuse", str(saved), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "search.py"), *argv],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads((out / "search.json").read_text())
    assert list(payload["summary"]["methods"]) == ["random", "optuna", "lrsearch"]
    # The target is the saved random run's full-budget best: its last trial, 0.6.
    assert payload["summary"]["target"] == pytest.approx(0.6)
    assert payload["summary"]["methods"]["optuna"]["epochs_to_target"] == [8]  # 4th trial: 0.65
    lrsearch = [r for r in payload["runs"] if r["method"] == "lrsearch"]
    assert len(lrsearch) == 1
    assert len(lrsearch[0]["trials"]) == 4
    # Only lrsearch trained here: the log line per run names it alone.
    assert "lrsearch seed 0" in done.stderr
    assert "random " not in done.stderr


def test_the_balancing_arms_differ_from_the_defaults_only_in_the_sampler() -> None:
    from lrsearch.search_space import parse_definition

    bench = load_search()
    args = bench.parse_args(["--methods", "lrsearch,lrsearch-nobalance,lrsearch-noprotect"])
    default = parse_definition(bench._study_raw(args, "lrsearch", 0, "a"))
    off = parse_definition(bench._study_raw(args, "lrsearch-nobalance", 0, "a"))
    unprotected = parse_definition(bench._study_raw(args, "lrsearch-noprotect", 0, "a"))
    assert default.sampler.balance_schedules is True
    assert default.sampler.protect_priority is True
    assert off.sampler == default.sampler.model_copy(update={"balance_schedules": False})
    assert unprotected.sampler == default.sampler.model_copy(update={"protect_priority": False})
    # random stays the plain random sampler (as in runs saved before balancing existed).
    random = parse_definition(bench._study_raw(args, "random", 0, "a"))
    assert random.sampler.balance_schedules is False
