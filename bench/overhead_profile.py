"""One worker on a large study: CPU per trial of lrsearch's or plain Optuna's loop.

For the question "where does a trial's time go at 10,000 trials": creates a
study as ``bench/overhead.py`` does, fills it with ``--start-at`` finished
trials (:func:`overhead.seed_study`), or reuses ``--study`` from an earlier
call, then runs one worker of ``--side`` for ``--trials`` trials and prints
its wall and CPU per trial (the first trial, which joins the study, apart).
Run it from two trees (``PYTHONPATH=<tree>``) on the same study to compare
code side by side; ``--profile N`` prints the N largest cumulative entries.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/overhead_profile.py \\
        --url postgresql+psycopg://root@127.0.0.1:5432/ovh_p --side lrsearch \\
        --start-at 9000 --trials 30 [--study NAME] [--profile 40]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=overhead.DEFAULT_URL)
    parser.add_argument("--side", choices=("lrsearch", "optuna"), default="lrsearch")
    parser.add_argument("--start-at", type=int, default=9000)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--study", default=None, help="reuse this study (no seeding)")
    parser.add_argument("--profile", type=int, default=0)
    args = parser.parse_args(argv)
    from lrsearch import storage

    storage.open_backend(args.url).dispose()
    name = args.study
    if name is None:
        name = f"prof-{args.side}-{uuid.uuid4().hex[:6]}"
        overhead._create(args.side, args.url, name, args.start_at + 100 * args.trials)
        started = time.perf_counter()
        overhead.seed_study(args.url, name, args.start_at)
        seconds = time.perf_counter() - started
        print(f"study {name}: seeded {args.start_at} trials in {seconds:.0f} s")
    out = Path(f"/tmp/overhead-profile-{uuid.uuid4().hex[:6]}.jsonl")
    profile = cProfile.Profile() if args.profile else None
    if profile is not None:
        profile.enable()
    if args.side == "lrsearch":
        overhead.run_lrsearch_worker(args.url, name, args.trials, out)
    else:
        overhead.run_optuna_worker(args.url, name, args.trials, out, 0)
    if profile is not None:
        profile.disable()
    rows = [row for row in map(json.loads, out.open()) if "n" in row]
    out.unlink()
    steady = [row for row in rows if not row["first"]]
    summary = {
        "study": name,
        "side": args.side,
        "trials": len(rows),
        "join_s": round(rows[0]["wall"], 2),
        "cpu_ms": round(1e3 * statistics.fmean(r["cpu"] for r in steady), 1),
        "wall_ms": round(1e3 * statistics.fmean(r["wall"] for r in steady), 1),
        "profiled": bool(profile),
    }
    print(json.dumps(summary), flush=True)
    if profile is not None:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
