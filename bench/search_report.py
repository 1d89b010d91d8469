"""Figures and the plot of bench/search.py: epochs to target, best at budgets, spreads.

Pure functions of the trials each run recorded (in trial order); no training,
no storage, so the figures can be recomputed from ``search.json``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BUDGET_FRACTIONS = (0.1, 0.2, 1 / 3, 0.5, 1.0)
ORDER_REPS = 500  # random trial orders averaged for random's expected epochs to target


@dataclass
class Trial:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None
    epochs: int
    schedule: str
    learning_rate: float | None = None


@dataclass
class Run:
    method: str
    seed: int
    seconds: float
    trials: list[Trial]
    cpu_seconds: float | None = None  # this process's CPU time (runs saved before: None)


def load_run(raw: dict[str, Any]) -> Run:
    """A :class:`Run` from its ``search.json`` form (``dataclasses.asdict``)."""
    trials = [Trial(**t) for t in raw["trials"]]
    cpu = raw.get("cpu_seconds")
    return Run(
        str(raw["method"]),
        int(raw["seed"]),
        float(raw["seconds"]),
        trials,
        None if cpu is None else float(cpu),
    )


# -- analysis --------------------------------------------------------------------------


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def best_so_far(trials: list[Trial], maximize: bool) -> list[tuple[int, float | None]]:
    """(cumulative epochs, best completed value) after each trial, in trial order."""
    out: list[tuple[int, float | None]] = []
    spent, best = 0, None
    for t in trials:
        spent += t.epochs
        value = t.value if t.state == "COMPLETE" else None
        if value is not None and (best is None or _better(value, best, maximize)):
            best = value
        out.append((spent, best))
    return out


def best_at(trials: list[Trial], budget: float, maximize: bool) -> float | None:
    found = None
    for spent, best in best_so_far(trials, maximize):
        if spent > budget:
            break
        found = best
    return found


def epochs_to_target(trials: list[Trial], target: float, maximize: bool) -> int | None:
    for spent, best in best_so_far(trials, maximize):
        if best is not None and not _better(target, best, maximize):
            return spent
    return None


def order_average(trials: list[Trial], target: float, maximize: bool, rng: Any) -> float | None:
    """Random search's expected epochs to target over random orders of its own trials."""
    reached = []
    for _ in range(ORDER_REPS):
        order = [trials[i] for i in rng.permutation(len(trials))]
        spent = epochs_to_target(order, target, maximize)
        if spent is not None:
            reached.append(spent)
    return statistics.fmean(reached) if reached else None


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = np.quantile(values, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    return dict(
        zip(("min", "p10", "p25", "median", "p75", "p90", "max"), map(float, q), strict=True)
    )


def _by_lr_decade(runs: list[Run]) -> dict[str, dict[str, float]]:
    """Final values of completed trials by decade of the base learning rate."""
    decades: dict[int, list[float]] = {}
    for r in runs:
        for t in r.trials:
            if t.state == "COMPLETE" and t.value is not None and t.learning_rate:
                decades.setdefault(math.floor(math.log10(t.learning_rate)), []).append(t.value)
    return {
        f"1e{d}..1e{d + 1}": {"n": float(len(v)), **_spread(v)} for d, v in sorted(decades.items())
    }


def summarise(runs: list[Run], args: argparse.Namespace, maximize: bool) -> dict[str, Any]:
    """Every figure the report prints, from the raw runs."""
    by_method = {m: [r for r in runs if r.method == m] for m in args.methods}
    full = args.trials * args.epochs
    summary: dict[str, Any] = {"full_budget_epochs": full, "methods": {}}
    # Random's median full-budget best; without random runs, the median over all runs.
    target_runs = by_method.get("random") or runs
    summary["target_from"] = "random's" if by_method.get("random") else "all runs'"
    random_bests = [best_at(r.trials, full, maximize) for r in target_runs]
    finite = [b for b in random_bests if b is not None]
    target = statistics.median(finite) if finite else None
    summary["target"] = target
    rng = np.random.default_rng(0)
    for method, mruns in by_method.items():
        row: dict[str, Any] = {"runs": len(mruns)}
        if target is not None:
            row["epochs_to_target"] = [epochs_to_target(r.trials, target, maximize) for r in mruns]
            if method == "random":
                row["order_average"] = [
                    order_average(r.trials, target, maximize, rng) for r in mruns
                ]
        row["best_at"] = {
            f"{frac:.2f}": [best_at(r.trials, frac * full, maximize) for r in mruns]
            for frac in BUDGET_FRACTIONS
        }
        row["epochs_spent"] = [sum(t.epochs for t in r.trials) for r in mruns]
        row["types_with_k_completed"] = [
            sum(
                1
                for s in {t.schedule for t in r.trials}
                if sum(t.schedule == s and t.state == "COMPLETE" for t in r.trials) >= args.k
            )
            for r in mruns
        ]
        finals = [
            t.value
            for r in mruns
            for t in r.trials
            if t.state == "COMPLETE" and t.value is not None
        ]
        row["final_values"] = _spread(finals)
        per_type: dict[str, list[float]] = {}
        for r in mruns:
            for s in sorted({t.schedule for t in r.trials}):
                done = [
                    t.value
                    for t in r.trials
                    if t.schedule == s and t.state == "COMPLETE" and t.value is not None
                ]
                if done:
                    per_type.setdefault(s, []).append(max(done) if maximize else min(done))
        row["best_per_schedule"] = {s: _spread(v) for s, v in per_type.items()}
        row["final_by_lr_decade"] = _by_lr_decade(mruns)
        row["states_per_schedule"] = states_per_schedule(mruns)
        row["seconds"] = [r.seconds for r in mruns]
        row["cpu_seconds"] = [r.cpu_seconds for r in mruns]
        summary["methods"][method] = row
    return summary


def states_per_schedule(runs: list[Run]) -> dict[str, dict[str, int]]:
    """Trials per schedule type and final state, summed over the runs."""
    out: dict[str, dict[str, int]] = {}
    for r in runs:
        for t in r.trials:
            row = out.setdefault(t.schedule, {"trials": 0, "COMPLETE": 0, "PRUNED": 0, "FAIL": 0})
            row["trials"] += 1
            row[t.state] = row.get(t.state, 0) + 1
    return dict(sorted(out.items()))


def warm_start_summary(
    runs: list[Run], firsts: dict[int, list[Trial]], maximize: bool
) -> dict[str, Any]:
    """Epochs the ``warm`` and ``cold`` second studies need to reach their first study's best.

    Two targets per seed: the first study's best, and 99% of it (for maximised
    metrics; 101% when minimising), since re-training the first study's winner
    with another training seed need not reproduce its exact value.
    """
    out: dict[str, Any] = {"first_best": {}, "methods": {}}
    for seed, trials in sorted(firsts.items()):
        out["first_best"][str(seed)] = best_at(trials, math.inf, maximize)
    for method in ("warm", "cold"):
        row: dict[str, list[Any]] = {"seed": [], "to_best": [], "to_99pct": [], "best": []}
        for r in (r for r in runs if r.method == method):
            first_best = out["first_best"].get(str(r.seed))
            row["seed"].append(r.seed)
            row["best"].append(best_at(r.trials, math.inf, maximize))
            if first_best is None:
                row["to_best"].append(None)
                row["to_99pct"].append(None)
                continue
            near = first_best * (0.99 if maximize else 1.01)
            row["to_best"].append(epochs_to_target(r.trials, first_best, maximize))
            row["to_99pct"].append(epochs_to_target(r.trials, near, maximize))
        out["methods"][method] = row
    return out


# -- report ----------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _median_range(values: list[float | None], digits: int = 4) -> str:
    """``median (min-max)`` over the runs that got a value; ``never`` counted apart."""
    got = [v for v in values if v is not None]
    never = len(values) - len(got)
    if not got:
        return "never"
    low, high = _fmt(min(got), digits), _fmt(max(got), digits)
    text = f"{_fmt(statistics.median(got), digits)} ({low}-{high})"
    return text + (f"; {never} never" if never else "")


def report(summary: dict[str, Any], args: argparse.Namespace) -> str:
    target_from = summary.get("target_from", "random's")
    lines = [
        f"task {args.task} {args.task_options or ''}, {len(args.seed_list)} seeds x "
        f"{args.trials} trials x {args.epochs} epochs; full budget {summary['full_budget_epochs']}"
        f" epochs; target ({target_from} median full-budget best)"
        f" {_fmt(summary['target'])}",
        "",
        "| method | epochs to target, median (range) | epochs spent | "
        + " | ".join(f"best at {float(f):.0%} of budget" for f in summary_fractions(summary))
        + f" | types with >= {args.k} completed |",
        "|---" * (4 + len(summary_fractions(summary))) + "|",
    ]
    for method, row in summary["methods"].items():
        to_target = _median_range(row.get("epochs_to_target", []), 0)
        if "order_average" in row:
            to_target += f"; trial-order average {_median_range(row['order_average'], 0)}"
        cells = [
            method,
            to_target,
            _median_range(row["epochs_spent"], 0),
            *(_median_range(v) for v in row["best_at"].values()),
            _median_range(row["types_with_k_completed"], 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for method, row in summary["methods"].items():
        cpu = [v for v in row.get("cpu_seconds", []) if v is not None]
        lines.append(
            f"{method}: seconds per run, wall {_median_range(row['seconds'], 1)}, "
            f"CPU {_median_range(cpu, 1) if cpu else '-'}"
            + (f", CPU total {sum(cpu):.0f}" if cpu else "")
        )
    for method, row in summary["methods"].items():
        spread = row["final_values"]
        if not spread:
            continue
        lines += [
            "",
            f"{method}: final values of completed trials: "
            + ", ".join(f"{k} {v:.4f}" for k, v in spread.items()),
            "best trial per schedule type (median over seeds, min-max):",
        ]
        for sched, s in sorted(row["best_per_schedule"].items()):
            lines.append(f"  {sched:12s} {s['median']:.4f} ({s['min']:.4f}-{s['max']:.4f})")
        lines.append("final values by learning-rate decade (n, median, max):")
        for decade, s in row["final_by_lr_decade"].items():
            lines.append(f"  {decade:12s} {s['n']:3.0f} {s['median']:.4f} {s['max']:.4f}")
    lines += _states_lines(summary)
    if "warm_start" in summary:
        lines += _warm_start_lines(summary["warm_start"])
    return "\n".join(lines)


def _states_lines(summary: dict[str, Any]) -> list[str]:
    lines = ["", "trials per schedule type, summed over seeds: complete / pruned / fail of all"]
    for method, row in summary["methods"].items():
        cells = [
            f"{s} {c['COMPLETE']}/{c['PRUNED']}/{c['FAIL']} of {c['trials']}"
            for s, c in row.get("states_per_schedule", {}).items()
        ]
        lines.append(f"  {method}: " + "; ".join(cells))
    return lines


def _warm_start_lines(ws: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "warm start: epochs a second study needs to reach its first study's best (or 99% of it)",
        "first studies' best: "
        + ", ".join(f"seed {k} {_fmt(v)}" for k, v in ws["first_best"].items()),
    ]
    for method, row in ws["methods"].items():
        per_seed = ", ".join(
            f"seed {s}: {'never' if b is None else b} / {'never' if n is None else n}"
            for s, b, n in zip(row["seed"], row["to_best"], row["to_99pct"], strict=True)
        )
        lines.append(
            f"  {method}: to best {_median_range(row['to_best'], 0)}; to 99% "
            f"{_median_range(row['to_99pct'], 0)}; final best {_median_range(row['best'])}"
            f" [{per_seed}]"
        )
    return lines


def summary_fractions(summary: dict[str, Any]) -> list[str]:
    first: dict[str, Any] = next(iter(summary["methods"].values()), {"best_at": {}})
    return list(first["best_at"])


def plot(runs: list[Run], args: argparse.Namespace, maximize: bool, path: Path) -> str:
    """Best-so-far vs epochs, the median over seeds per method; skipped without matplotlib."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "plot skipped: matplotlib is not installed (.venv/bin/pip install matplotlib)"
    grid = np.linspace(0, args.trials * args.epochs, 200)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in args.methods:
        curves = []
        for r in (r for r in runs if r.method == method):
            curve = [best_at(r.trials, g, maximize) for g in grid]
            curves.append([np.nan if v is None else v for v in curve])
        if curves:
            with warnings.catch_warnings():  # before any trial completes: all-NaN columns
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(np.array(curves, dtype=float), axis=0)
            ax.plot(grid, median, label=method)
    ax.set_xlabel("epochs spent (all trials)")
    ax.set_ylabel("best completed value so far (median over seeds)")
    ax.set_title(f"{args.task}: {len(args.seed_list)} seeds x {args.trials} trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot: {path}"
