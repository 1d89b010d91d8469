"""One digits-mlp study with a confirmation phase: single-best vs confirmed ranking.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python bench/confirm_digits.py 36`` (trials;
10 epochs each, TPE seed 0, Hyperband, confirm {top_k: 1, seeds: 2}, the demo's
one baseline per schedule type first). Writes a fresh SQLite file under /tmp.
"""

import sys
import time

from lrsearch import storage
from lrsearch.cli.worker_cmds import DEMO_BASELINES
from lrsearch.search_space import parse_definition
from lrsearch.workers.loop import WorkerOptions, run_worker

url = f"sqlite:////tmp/confirm-digits-{int(time.time())}.db"
raw = {
    "name": "digits-confirm",
    "task": "digits-mlp",
    "budget": {"n_trials": int(sys.argv[1]), "max_epochs": 10},
    "sampler": {"type": "tpe", "seed": 0},
    "pruner": {"type": "hyperband", "min_epochs": 4},
    "confirm": {"top_k": 1, "seeds": 2},
}
backend = storage.open_backend(url)
definition = parse_definition(raw)
record = storage.create_study(backend, definition)
study = storage.load_optuna_study(backend, record)
common = {
    "learning_rate": 0.05,
    "batch_size": 64,
    "dropout": 0.1,
    "weight_init": "default",
    "warmup_epochs": 0,
}
for baseline in DEMO_BASELINES:
    storage.enqueue_fixed(backend, study, record, {**common, **baseline})
t0 = time.monotonic()
run_worker(
    WorkerOptions(
        storage_url=url,
        study=record.name,
        device="cpu",
        idle_exit=3.0,
        install_signal_handlers=False,
    )
)
print(f"ran in {time.monotonic() - t0:.0f} s on {url}")
with backend.engine.connect() as conn:
    single = storage.best_per_schedule(conn, record)
    board = storage.confirmed_leaderboard(conn, record)
    summary = storage.study_summary(conn, record)
print(
    "search counts",
    {k: v for k, v in summary.counts.items() if v},
    "confirmations",
    {k: v for k, v in summary.confirmations.items() if v},
)
print("BEFORE (single best search trial per type):")
for i, s in enumerate(single, 1):
    best = "-" if s.best is None else f"{s.best.value:.4f} (trial {s.best.number})"
    print(f"  {i}. {s.schedule:<12} best={best} complete={s.n_complete} pruned={s.n_pruned}")
print("AFTER (confirmed mean over original + confirmations):")
for i, e in enumerate(board, 1):
    c = e.confirmed
    if c is None:
        print(f"  {i}. {e.stats.schedule:<12} (unconfirmed)")
    else:
        std = "-" if c.std is None else f"{c.std:.4f}"
        values = [round(v, 4) for v in c.values]
        print(f"  {i}. {e.stats.schedule:<12} mean={c.mean:.4f} std={std} n={c.n} {values}")
        print(f"     within noise of {c.within_noise}")
