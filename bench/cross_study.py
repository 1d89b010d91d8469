"""Time ``GET /schedules/best?task=NAME``'s query at 100 studies x 1,000 trials.

Writes the rows straight into ``lrsearch_studies`` and ``lrsearch_trials`` (the
only tables :func:`storage.best_across_studies` reads), in a tenant of its own
and with ids far above any test's: ``--studies`` studies of one task (a fifth of
them minimizing a loss, the rest maximizing an accuracy), ``--trials`` finished
trials each (70% COMPLETE, 25% PRUNED, 5% FAIL), mixed schedules with their
own parameters. Another tenant's studies of the same task are written too, so
that the tenant filter has something to skip. With ``--reuse`` an earlier
build is kept.

Then it checks the answer against a brute force over every row, and times
``--reps`` calls (a pooled connection each, as a request takes one), printing
p50 and p99 in milliseconds and PostgreSQL's plan.

Usage::

    .venv/bin/python bench/cross_study.py [--url URL] [--studies 100] [--trials 1000]
        [--reps 50] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time
from typing import Any

import sqlalchemy as sa

from lrsearch import storage
from lrsearch.search_space import SCHEDULE_PARAMS, parse_definition
from lrsearch.storage._tables import studies, trial_results

DEFAULT_URL = os.environ.get(
    "LRSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
TENANT, OTHER_TENANT, TASK = "bench-cross-study", "bench-cross-study-other", "digits-mlp"
BASE_ID = 900_000_000  # study ids; trial ids are BASE_ID + study * trials + number
SCHEDULES = ["step", "exponential", "cosine", "plateau", "cyclic", "warmup"]


def _params(rng: random.Random, schedule: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "schedule": schedule,
        "learning_rate": 10 ** rng.uniform(-4, 0),
        "batch_size": rng.choice([32, 64, 128, 256]),
        "dropout": rng.uniform(0.0, 0.5),
        "weight_init": "default",
    }
    if schedule != "warmup":
        params["warmup_epochs"] = rng.randint(0, 5)
    for name, spec in SCHEDULE_PARAMS[schedule].items():  # type: ignore[index]
        key = f"{schedule}.{name}"
        if spec.kind == "categorical":
            params[key] = rng.choice(spec.choices)
        elif spec.kind == "int":
            params[key] = rng.randint(int(spec.low), int(spec.high))
        else:
            params[key] = rng.uniform(spec.low, spec.high)
    return params


def build(engine: sa.Engine, n_studies: int, n_trials: int) -> None:
    rng = random.Random(0)
    with engine.begin() as conn:
        ids = sa.select(studies.c.study_id).where(studies.c.tenant.in_((TENANT, OTHER_TENANT)))
        conn.execute(trial_results.delete().where(trial_results.c.study_id.in_(ids)))
        conn.execute(studies.delete().where(studies.c.tenant.in_((TENANT, OTHER_TENANT))))
    now = time.time()
    for s in range(n_studies + n_studies // 10):
        tenant = TENANT if s < n_studies else OTHER_TENANT
        minimize = s % 5 == 0
        metric = "val_loss" if minimize else "val_accuracy"
        name = f"bench-xs-{s:04d}"
        defn = parse_definition(
            {
                "name": name,
                "task": TASK,
                "objective": {"metric": metric},
                "budget": {"n_trials": n_trials, "max_epochs": 10},
            }
        )
        study_id = BASE_ID + s
        rows = []
        for number in range(n_trials):
            schedule = rng.choice(SCHEDULES)
            state = rng.choices(["COMPLETE", "PRUNED", "FAIL"], weights=[70, 25, 5])[0]
            acc = min(0.99, max(0.05, rng.gauss(0.85, 0.07)))
            value = None if state == "FAIL" else (1.0 - acc if minimize else acc)
            params = _params(rng, schedule)
            rows.append(
                {
                    "trial_id": BASE_ID + s * n_trials + number,
                    "study_id": study_id,
                    "number": number,
                    "state": state,
                    "value": value,
                    "schedule": schedule,
                    "learning_rate": params["learning_rate"],
                    "batch_size": params["batch_size"],
                    "dropout": params["dropout"],
                    "weight_init": "default",
                    "warmup_epochs": params.get("warmup_epochs", 0),
                    "epochs_run": 10 if state == "COMPLETE" else rng.randint(1, 9),
                    "params": json.dumps(params),
                    "error": "diverged" if state == "FAIL" else None,
                    "worker": "bench:1",
                    "device": "cpu",
                    "started_at": now,
                    "finished_at": now + 1,
                    "duration_s": 1.0,
                    "attempt": 0,
                    "retry_of": None,
                    "retried": False,
                }
            )
        with engine.begin() as conn:
            conn.execute(
                studies.insert(),
                {
                    "study_id": study_id,
                    "name": name,
                    "tenant": tenant,
                    "state": "running",
                    "task": TASK,
                    "direction": defn.direction,
                    "n_trials": n_trials,
                    "max_epochs": 10,
                    "max_retries": 2,
                    "definition": defn.model_dump_json(),
                    "created_at": now,
                    "updated_at": now,
                    "optuna_name": f"{tenant}/{name}",
                    "state_reason": None,
                    "definition_version": storage.DEFINITION_VERSION,
                },
            )
            conn.execute(trial_results.insert(), rows)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE lrsearch_trials"))
            conn.execute(sa.text("ANALYZE lrsearch_studies"))


def brute_force(engine: sa.Engine, k: int) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """Every COMPLETE row into Python, ranked there: the answer to compare with."""
    query = (
        sa.select(
            studies.c.name,
            studies.c.direction,
            trial_results.c.schedule,
            trial_results.c.value,
            trial_results.c.number,
        )
        .join(studies, studies.c.study_id == trial_results.c.study_id)
        .where(
            studies.c.tenant == TENANT,
            studies.c.task == TASK,
            trial_results.c.state == "COMPLETE",
        )
    )
    pool: dict[tuple[str, str], list[tuple[float, str, int]]] = {}
    with engine.connect() as conn:
        for name, direction, schedule, value, number in conn.execute(query):
            if value is None or not math.isfinite(value):
                continue
            sign = -1.0 if direction == "maximize" else 1.0
            pool.setdefault((direction, schedule), []).append((sign * value, name, number))
    return {key: [(n, num) for _, n, num in sorted(rows)[:k]] for key, rows in pool.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    backend = storage.open_backend(args.url)
    engine = backend.engine
    if not args.reuse:
        t = time.perf_counter()
        build(engine, args.studies, args.trials)
        print(f"built {args.studies} x {args.trials} trials in {time.perf_counter() - t:.1f} s")

    def run() -> list[storage.CrossStudySchedule]:
        with engine.connect() as conn:
            return storage.best_across_studies(conn, tenant=TENANT, task=TASK, k=3)

    got = {(g.direction, g.schedule): [(t.study, t.row.number) for t in g.trials] for g in run()}
    assert got == brute_force(engine, 3), "the query disagrees with the brute force"
    for _ in range(3):
        run()
    samples = []
    for _ in range(args.reps):
        t = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t) * 1000.0)
    ordered = sorted(samples)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    print(
        f"best_across_studies, {args.studies} studies x {args.trials} trials "
        f"({engine.dialect.name}): p50 {statistics.median(samples):.1f} ms, "
        f"p99 {p99:.1f} ms over {args.reps} calls"
    )
    if engine.dialect.name == "postgresql":
        from lrsearch.storage._cross_study import _ranked

        stmt = _ranked(TENANT, TASK, 3, "postgresql").compile(
            engine, compile_kwargs={"literal_binds": True}
        )
        with engine.connect() as conn:
            plan = conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {stmt}")).scalars().all()
        print("\n".join(plan))
    backend.dispose()


if __name__ == "__main__":
    main()
