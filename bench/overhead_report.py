"""Tables and a plot from bench/overhead.py's JSON: per-trial cost by study size, both sides.

Each run's fifths are placed at the study size they ran at (``start_at`` plus
the middle of the fifth), so a fresh 2,000-trial run and a run started at
9,500 trials share one axis (one line per run: nothing is drawn between
them). Prints, per fifth, client CPU per trial for lrsearch and plain Optuna
and their ratio, with transactions per trial; then lrsearch's growth from its
first to its last fifth, compared with Optuna's.

Usage::

    .venv/bin/python bench/overhead_report.py ovh_2k.json ovh_10k.json \\
        [--plot docs/img/overhead-cpu.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def points(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per fifth: the study size at its middle and both sides' figures."""
    start, trials = int(result.get("start_at", 0)), int(result["trials"])
    fifths = result["fifths"]
    rows = []
    for i, (ours, theirs) in enumerate(zip(fifths["lrsearch"], fifths["optuna"], strict=True)):
        rows.append(
            {
                "size": start + (i + 0.5) * trials / 5,
                "fifth": i + 1,
                "lrsearch_cpu": ours["cpu_ms"],
                "optuna_cpu": theirs["cpu_ms"],
                "ratio": ours["cpu_ms"] / theirs["cpu_ms"],
                "lrsearch_xacts": ours["xacts_per_trial"],
                "optuna_xacts": theirs["xacts_per_trial"],
                "lrsearch_wall": ours["wall_ms"],
                "optuna_wall": theirs["wall_ms"],
                "lock_ms": ours.get("lock_held_ms_per_trial"),
                "join_s": (ours["join_s"], theirs["join_s"]),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| trials in study | lrsearch CPU ms | Optuna CPU ms | ratio | lrsearch xacts "
        "| Optuna xacts | lock held ms/trial | join s (lrsearch / Optuna) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,.0f} | {r['lrsearch_cpu']:.0f} | {r['optuna_cpu']:.0f} "
            f"| {r['ratio']:.2f} | {r['lrsearch_xacts']} | {r['optuna_xacts']} "
            f"| {r['lock_ms']} | {r['join_s'][0]} / {r['join_s'][1]} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> str:
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "plot skipped: matplotlib is not installed (.venv/bin/pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(7, 4))
    # One line per run: nothing was measured between two runs' study sizes.
    runs: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        runs.setdefault(r.get("run", 0), []).append(r)
    for i, run in enumerate(runs.values()):
        run = sorted(run, key=lambda r: r["size"])
        sizes = [r["size"] for r in run]
        ax.plot(sizes, [r["optuna_cpu"] for r in run], "o-", color="C0")
        ax.plot(sizes, [r["lrsearch_cpu"] for r in run], "s-", color="C1")
        if i == 0:
            ax.lines[-2].set_label("plain Optuna")
            ax.lines[-1].set_label("lrsearch")
    ax.set_xlabel("trials in the study")
    ax.set_ylabel("client CPU ms per trial (no-op training)")
    ax.set_title("Per-trial overhead, 4 workers, PostgreSQL")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"plot: {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    everything: list[dict[str, Any]] = []
    for path in args.results:
        result = json.loads(path.read_text())
        rows = points(result)
        for row in rows:
            row["run"] = path.name
        everything += rows
        print(f"## {path.name}: {result['trials']} trials from {result.get('start_at', 0)}")
        print(table(rows))
        ratio = statistics.fmean(r["ratio"] for r in rows)
        print(f"mean ratio lrsearch / Optuna CPU per trial: {ratio:.2f}")
        first, last = rows[0], rows[-1]
        print(
            f"first -> last fifth: lrsearch x{last['lrsearch_cpu'] / first['lrsearch_cpu']:.2f}, "
            f"Optuna x{last['optuna_cpu'] / first['optuna_cpu']:.2f}\n"
        )
        if "scale" in result:
            for workers, row in result["scale"].items():
                print(
                    f"scale {workers} workers: {row['trials']} trials, steady "
                    f"{row['steady_trials_per_s']} trials/s, lock held "
                    f"{row.get('lock_held_ms_per_trial')} ms/trial "
                    f"(p50 {row.get('lock_held_ms_p50')}), lock-bound ceiling "
                    f"{row.get('lock_bound_trials_per_s')} trials/s"
                )
    if len(args.results) > 1:
        ordered = sorted(everything, key=lambda r: r["size"])
        first, last = ordered[0], ordered[-1]
        ours = last["lrsearch_cpu"] / first["lrsearch_cpu"]
        theirs = last["optuna_cpu"] / first["optuna_cpu"]
        print(f"smallest -> largest study: lrsearch x{ours:.2f}, Optuna x{theirs:.2f}")
    if args.plot is not None:
        print(plot(everything, args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
