"""Benchmark the fast result queries against the naive ``load_study(...).trials`` approach.

Builds (or with ``--reuse`` reuses) a study of N finished trials, by default
20,000 on the PostgreSQL test server: mixed schedules, COMPLETE / PRUNED / FAIL
(some failures retried), intermediate values every epoch, ``lr_curve`` and
``metrics`` user attrs. The study is created with :func:`storage.create_study`;
its trials are bulk-inserted (``COPY`` on PostgreSQL) into Optuna's tables and
our summary table consistently, as ``finish_trial`` would have left them.

Then it times each query over ``--reps`` repetitions (a pooled connection per
repetition, as a request would take one) and prints p50/p99 beside the naive
approach: ``optuna.load_study(...).trials`` plus the same best-per-schedule
computed in Python.

Usage::

    .venv/bin/python bench/results_queries.py [--url URL] [--trials 20000]
        [--reps 50] [--naive-reps 5] [--reuse] [--name NAME]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import optuna
import sqlalchemy as sa
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import FrozenTrial

from lrsearch import storage
from lrsearch.search_space import StudyDefinition, parse_definition, sample_config
from lrsearch.storage._aggregates import refresh_study
from lrsearch.storage._tables import studies as our_studies
from lrsearch.storage._tables import study_aggregates, trial_results, trial_runs

DEFAULT_URL = os.environ.get(
    "LRSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
SCHEDULES = ["step", "exponential", "cosine", "plateau", "cyclic", "warmup"]
MAX_EPOCHS = 10
# Each schedule gets its own typical final accuracy, so "best schedule" means something.
SCHEDULE_MEAN = {
    "step": 0.86,
    "exponential": 0.84,
    "cosine": 0.88,
    "plateau": 0.85,
    "cyclic": 0.83,
    "warmup": 0.87,
}


_T = TypeVar("_T")


class _Sampler:
    """Stands in for ``optuna.Trial`` in :func:`search_space.sample_config`.

    Draws each suggested parameter at random and records its distribution, so
    the bulk-inserted trials carry exactly the parameters a real worker writes.
    """

    def __init__(self, rng: random.Random, schedule: str) -> None:
        self.rng = rng
        self.schedule = schedule
        self.params: dict[str, Any] = {}
        self.dists: dict[str, BaseDistribution] = {}

    def _keep(self, name: str, value: _T, dist: BaseDistribution) -> _T:
        self.params[name] = value
        self.dists[name] = dist
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.schedule if name == "schedule" else self.rng.choice(list(choices))
        return self._keep(name, value, CategoricalDistribution(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        return self._keep(name, self.rng.randint(low, high), IntDistribution(low, high, log=log))

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        if log:
            value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        else:
            value = self.rng.uniform(low, high)
        return self._keep(name, value, FloatDistribution(low, high, log=log))


def _bulk(
    conn: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert many rows: ``COPY`` on PostgreSQL, ``executemany`` elsewhere."""
    if conn.dialect.name == "postgresql":
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        with (
            dbapi.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp,
        ):
            for row in rows:
                cp.write_row(row)
        return
    placeholders = ", ".join(f":{c}" for c in columns)
    stmt = sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})")
    conn.execute(stmt, [dict(zip(columns, r, strict=True)) for r in rows])


def _drop_study(backend: storage.Backend, name: str) -> None:
    """Delete a previous bench study with set-based SQL (Optuna's delete is per-row ORM)."""
    with backend.engine.begin() as conn:
        sid = conn.execute(
            sa.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}
        ).scalar()
        if sid is None:
            return
        trial_ids = "SELECT trial_id FROM trials WHERE study_id = :s"
        for child in (
            "trial_intermediate_values",
            "trial_params",
            "trial_values",
            "trial_user_attributes",
            "trial_system_attributes",
            "trial_heartbeats",
        ):
            conn.execute(
                sa.text(f"DELETE FROM {child} WHERE trial_id IN ({trial_ids})"), {"s": sid}
            )
        for table in (
            "trials",
            "study_user_attributes",
            "study_system_attributes",
            "study_directions",
        ):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE study_id = :s"), {"s": sid})
        conn.execute(sa.text("DELETE FROM studies WHERE study_id = :s"), {"s": sid})
        for ours in (trial_results, trial_runs, study_aggregates, our_studies):
            conn.execute(ours.delete().where(ours.c.study_id == sid))


@dataclass
class _FakeTrial:
    """One finished trial as a worker would have left it in every table."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    internal: list[tuple[str, float, str]]  # (name, internal value, distribution JSON)
    curve: list[float]
    user_attrs: dict[str, Any]
    start: datetime.datetime
    done: datetime.datetime
    retry_of: int | None
    retried: bool


def _fake_trials(defn: StudyDefinition, n: int, rng: random.Random) -> list[_FakeTrial]:
    t0 = datetime.datetime(2025, 1, 1)
    out: list[_FakeTrial] = []
    pending_retry: int | None = None
    for number in range(n):
        schedule = rng.choice(SCHEDULES)
        sampler = _Sampler(rng, schedule)
        sample_config(sampler, defn)  # type: ignore[arg-type]
        roll = rng.random()
        state = "COMPLETE" if roll < 0.55 else "PRUNED" if roll < 0.92 else "FAIL"
        if state == "COMPLETE":
            epochs = MAX_EPOCHS
        else:
            epochs = rng.randint(1, MAX_EPOCHS - 1) if state == "PRUNED" else rng.randint(0, 3)
        final = min(0.999, max(0.05, rng.gauss(SCHEDULE_MEAN[schedule], 0.05)))
        curve = [final * (1 - 0.5 * 0.6**e) for e in range(epochs)]
        if state == "COMPLETE":
            curve[-1] = final
        value = curve[-1] if state in ("COMPLETE", "PRUNED") else None
        # A failure is retried by the next trial. ``retried`` is set on the failed
        # trial only when that retry is created (below), never from the wish to
        # retry: the last trial of the study has no next trial to retry it.
        wants_retry = state == "FAIL" and rng.random() < 0.5
        retry_of, pending_retry = pending_retry, (number if wants_retry else None)
        if retry_of is not None:
            out[retry_of].retried = True
        lr = float(sampler.params["learning_rate"])
        attrs: dict[str, Any] = {
            "lr_curve": [lr * 0.9**e for e in range(epochs)],
            "metrics": [
                {"epoch": e, "val_accuracy": v, "train_loss": 1 - v} for e, v in enumerate(curve)
            ],
            "worker": f"bench-host:{1000 + number % 8}",
            "device": f"cuda:{number % 4}",
        }
        if retry_of is not None:
            attrs.update(retry_of=retry_of, attempt=1)
        if state == "FAIL":
            attrs["error"] = "CUDA out of memory" if number % 2 else "diverged: loss is nan"
        start = t0 + datetime.timedelta(seconds=30 * number)
        out.append(
            _FakeTrial(
                number=number,
                state=state,
                value=value,
                params=sampler.params,
                internal=[
                    (
                        k,
                        sampler.dists[k].to_internal_repr(v),
                        distribution_to_json(sampler.dists[k]),
                    )
                    for k, v in sampler.params.items()
                ],
                curve=curve,
                user_attrs=attrs,
                start=start,
                done=start + datetime.timedelta(seconds=3 * max(epochs, 1)),
                retry_of=retry_of,
                retried=False,
            )
        )
    return out


def _summary_row(t: _FakeTrial, trial_id: int, study_id: int) -> dict[str, Any]:
    """The ``lrsearch_trials`` row that ``storage.record_result`` writes for ``t``."""
    return {
        "trial_id": trial_id,
        "study_id": study_id,
        "number": t.number,
        "state": t.state,
        "value": t.value,
        "schedule": t.params["schedule"],
        "learning_rate": t.params["learning_rate"],
        "batch_size": t.params["batch_size"],
        "dropout": t.params["dropout"],
        "weight_init": t.params["weight_init"],
        "warmup_epochs": t.params.get("warmup_epochs", 0),
        "epochs_run": len(t.curve),
        "params": json.dumps(t.params),
        "error": t.user_attrs.get("error"),
        "worker": t.user_attrs["worker"],
        "device": t.user_attrs["device"],
        "started_at": t.start.timestamp(),
        "finished_at": t.done.timestamp(),
        "duration_s": (t.done - t.start).total_seconds(),
        "attempt": t.user_attrs.get("attempt", 0),
        "retry_of": t.retry_of,
        "retried": t.retried,
    }


def build_study(backend: storage.Backend, name: str, n: int, seed: int = 0) -> storage.StudyRecord:
    """Create the study and bulk-insert ``n`` finished trials consistently into every table."""
    defn = parse_definition(
        {
            "name": name,
            "task": "synthetic",
            "budget": {"n_trials": n, "max_epochs": MAX_EPOCHS, "max_retries": 2},
            "sampler": {"type": "random", "seed": seed},
            "search_space": {"schedules": SCHEDULES},
        }
    )
    fakes = _fake_trials(defn, n, random.Random(seed))
    # The budget counts every finished trial but the failures that a retry repeats.
    budget = defn.budget.model_copy(update={"n_trials": n - sum(t.retried for t in fakes)})
    record = storage.create_study(backend, defn.model_copy(update={"budget": budget}))
    sid = record.study_id
    with backend.engine.begin() as conn:
        _bulk(
            conn,
            "trials",
            ("number", "study_id", "state", "datetime_start", "datetime_complete"),
            ((t.number, sid, t.state, t.start, t.done) for t in fakes),
        )
        ids: dict[int, int] = {
            int(num): int(tid)
            for tid, num in conn.execute(
                sa.text("SELECT trial_id, number FROM trials WHERE study_id = :s"), {"s": sid}
            )
        }
        _bulk(
            conn,
            "trial_params",
            ("trial_id", "param_name", "param_value", "distribution_json"),
            ((ids[t.number], *p) for t in fakes for p in t.internal),
        )
        _bulk(
            conn,
            "trial_values",
            ("trial_id", "objective", "value", "value_type"),
            ((ids[t.number], 0, t.value, "FINITE") for t in fakes if t.value is not None),
        )
        _bulk(
            conn,
            "trial_intermediate_values",
            ("trial_id", "step", "intermediate_value", "intermediate_value_type"),
            ((ids[t.number], step, v, "FINITE") for t in fakes for step, v in enumerate(t.curve)),
        )
        _bulk(
            conn,
            "trial_user_attributes",
            ("trial_id", "key", "value_json"),
            ((ids[t.number], k, json.dumps(v)) for t in fakes for k, v in t.user_attrs.items()),
        )
        rows = [_summary_row(t, ids[t.number], sid) for t in fakes]
        _bulk(conn, "lrsearch_trials", tuple(rows[0]), (tuple(r.values()) for r in rows))
        # The running totals that recording each trial would have kept.
        refresh_study(conn, sid)
    if backend.dialect == "postgresql":
        with backend.engine.connect() as conn:
            # Fresh statistics and visibility map, as autovacuum would leave them on a
            # live system (index-only scans need the latter).
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
    return storage.get_study(backend, name)


# --- the naive approach ---------------------------------------------------------------


@dataclass(frozen=True)
class _NaiveStats:
    schedule: str
    best: FrozenTrial | None
    n_complete: int
    n_pruned: int
    n_failed: int
    median_value: float | None


def naive_best_per_schedule(
    backend: storage.Backend, record: storage.StudyRecord
) -> list[_NaiveStats]:
    """What a service without the summary table would do: load every trial, compute in Python."""
    study = optuna.load_study(study_name=record.optuna_name, storage=backend.optuna_storage)
    trials = study.trials
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    sign = -1.0 if record.direction == "maximize" else 1.0

    def final(t: FrozenTrial) -> float | None:
        ok = t.state.name in ("COMPLETE", "PRUNED") and t.value is not None
        return t.value if ok and t.value is not None and math.isfinite(t.value) else None

    def best_key(t: FrozenTrial) -> tuple[float, int]:
        return (sign * (final(t) or 0.0), t.number)

    out = []
    for schedule in record.definition.search_space.schedules:
        mine = [t for t in trials if t.params.get("schedule") == schedule]
        complete = [t for t in mine if t.state.name == "COMPLETE" and final(t) is not None]
        finals = [v for t in mine if (v := final(t)) is not None]
        out.append(
            _NaiveStats(
                schedule=schedule,
                best=min(complete, key=best_key, default=None),
                n_complete=len(complete),
                n_pruned=sum(t.state.name == "PRUNED" for t in mine),
                n_failed=sum(t.state.name == "FAIL" and t.number not in retried for t in mine),
                median_value=statistics.median(finals) if finals else None,
            )
        )
    ranked = sorted(
        ((s, s.best) for s in out if s.best is not None), key=lambda pair: best_key(pair[1])
    )
    return [s for s, _ in ranked] + [s for s in out if s.best is None]


# --- timing ---------------------------------------------------------------------------


def _percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (with 50 samples, p99 is the slowest one)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


_LOST_CONNECTION = (sa.exc.OperationalError, optuna.exceptions.StorageInternalError)


def _time(fn: Callable[[], Any], reps: int, warmup: int) -> list[float]:
    """Wall-clock milliseconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones.

    The test server is shared: a repetition cut short by a dropped connection
    (someone else's restart test) is reported on stderr and run again.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    lost = 0
    while len(samples) < reps:
        t = time.perf_counter()
        try:
            fn()
        except _LOST_CONNECTION as exc:
            lost += 1
            print(f"connection lost ({type(exc).__name__}); repeating the run", file=sys.stderr)
            if lost > 3 * reps:
                raise
            continue
        samples.append((time.perf_counter() - t) * 1000.0)
    return samples


def _with_conn(
    backend: storage.Backend, query: Callable[[sa.Connection], Any]
) -> Callable[[], Any]:
    def run() -> Any:
        with backend.engine.connect() as conn:
            return query(conn)

    return run


def _check(backend: storage.Backend, record: storage.StudyRecord) -> None:
    """The fast answers must equal the naive ones before their speed means anything."""
    with backend.engine.connect() as conn:
        fast = storage.best_per_schedule(conn, record)
        summary = storage.study_summary(conn, record)
    naive = naive_best_per_schedule(backend, record)
    assert [s.schedule for s in fast] == [s.schedule for s in naive]
    for got, want in zip(fast, naive, strict=True):
        assert (got.best.number if got.best else None) == (want.best.number if want.best else None)
        got_counts = (got.n_complete, got.n_pruned, got.n_failed)
        assert got_counts == (want.n_complete, want.n_pruned, want.n_failed), got.schedule
        if want.median_value is None:
            assert got.median_value is None
        else:
            assert math.isclose(got.median_value or 0.0, want.median_value, rel_tol=1e-9)
    assert summary.finished == record.n_trials, (summary.finished, record.n_trials)
    assert summary.done
    # ``retried`` rows and the retries in Optuna's tables agree one for one.
    with backend.engine.connect() as conn:
        flagged = conn.execute(
            sa.select(trial_results.c.number).where(
                trial_results.c.study_id == record.study_id, trial_results.c.retried.is_(True)
            )
        ).scalars()
        flagged_numbers = {int(n) for n in flagged}
        retry_of = conn.execute(
            sa.text(
                "SELECT a.value_json FROM trial_user_attributes a JOIN trials t"
                " ON t.trial_id = a.trial_id WHERE t.study_id = :s AND a.key = 'retry_of'"
            ),
            {"s": record.study_id},
        ).scalars()
        retried_numbers = {int(json.loads(v)) for v in retry_of}
    assert flagged_numbers == retried_numbers, flagged_numbers ^ retried_numbers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="SQLAlchemy URL (default: %(default)s)")
    parser.add_argument(
        "--trials", type=int, default=20_000, help="finished trials (default: 20000)"
    )
    parser.add_argument(
        "--reps", type=int, default=50, help="timed repetitions per query (default: 50)"
    )
    parser.add_argument(
        "--naive-reps", type=int, default=5, help="repetitions of the naive approach (default: 5)"
    )
    parser.add_argument("--reuse", action="store_true", help="reuse the study if it already exists")
    parser.add_argument("--name", default=None, help="study name (default: bench-results-<trials>)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = args.name or f"bench-results-{args.trials}"
    backend = storage.open_backend(args.url, pool_size=2)
    try:
        record = None
        if args.reuse:
            try:
                record = storage.get_study(backend, name)
            except storage.StudyNotFoundError:
                record = None
            if record is not None:
                with backend.engine.connect() as conn:
                    counts = storage.study_summary(conn, record).counts
                if sum(counts.values()) != args.trials:
                    record = None
        if record is None:
            t = time.perf_counter()
            _drop_study(backend, name)
            record = build_study(backend, name, args.trials)
            print(
                f"built {name!r}: {args.trials} trials in {time.perf_counter() - t:.1f} s",
                file=sys.stderr,
            )
        else:
            print(f"reusing {name!r}", file=sys.stderr)
        _check(backend, record)
        rows = _bench(backend, record, args.reps, args.naive_reps)
    finally:
        backend.dispose()
    _print_table(args, backend.dialect, rows)
    return 0


def _bench(
    backend: storage.Backend, record: storage.StudyRecord, reps: int, naive_reps: int
) -> list[tuple[str, int, list[float]]]:
    first_numbers = list(range(0, 20 * 7, 7))
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("study_summary", _with_conn(backend, lambda c: storage.study_summary(c, record))),
        ("best_per_schedule", _with_conn(backend, lambda c: storage.best_per_schedule(c, record))),
        ("best_trial", _with_conn(backend, lambda c: storage.best_trial(c, record))),
        (
            "list_trials (first page, by number)",
            _with_conn(backend, lambda c: storage.list_trials(c, record)),
        ),
        (
            "list_trials (first page, by value)",
            _with_conn(backend, lambda c: storage.list_trials(c, record, order="value")),
        ),
        (
            "top_trials_per_schedule (k=3)",
            _with_conn(backend, lambda c: storage.top_trials_per_schedule(c, record)),
        ),
        (
            "curves (20 trials)",
            _with_conn(backend, lambda c: storage.curves(c, record, first_numbers)),
        ),
        ("trial_detail", lambda: storage.trial_detail(backend, record, 1)),
        (
            "get_study (record lookup)",
            _with_conn(backend, lambda c: storage.read_study(record.name, conn=c)),
        ),
    ]
    rows = [(label, reps, _time(fn, reps, warmup=3)) for label, fn in cases]
    # No warm-up: _check has just run it once.
    naive = _time(lambda: naive_best_per_schedule(backend, record), naive_reps, warmup=0)
    rows.append(("naive: load_study().trials + Python", naive_reps, naive))
    return rows


def _print_table(
    args: argparse.Namespace, dialect: str, rows: list[tuple[str, int, list[float]]]
) -> None:
    naive_p50 = _percentile(rows[-1][2], 0.5)
    print(
        f"{dialect}, {args.trials} trials, {datetime.date.today()}, "
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Optuna {optuna.__version__}, SQLAlchemy {sa.__version__}, "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| query | reps | p50 (ms) | p99 (ms) | naive p50 / p50 |")
    print("|---|---:|---:|---:|---:|")
    for label, reps, samples in rows:
        p50, p99 = _percentile(samples, 0.5), _percentile(samples, 0.99)
        print(f"| {label} | {reps} | {p50:.2f} | {p99:.2f} | {naive_p50 / p50:,.0f}x |")


if __name__ == "__main__":
    raise SystemExit(main())
