"""Overhead at scale: lrsearch's worker loop vs a plain Optuna loop, no-op training.

Both sides run one PostgreSQL study each of ``--trials`` trials with
``--workers`` worker processes, 20 reports per trial, TPE (lrsearch's default
settings: seeded ``TPESampler``) and Hyperband (lrsearch's schedule-aware
subclass vs Optuna's own). Training is a no-op: the objective is a cheap
deterministic function of the sampled learning rate and the epoch, so every
second measured is the search's own overhead.

- ``lrsearch``: the real pull loop (:func:`lrsearch.workers.loop.run_worker`)
  in each worker process, with ``train_trial`` replaced by the no-op (the
  task is still resolved and built as for a real trial).
- ``optuna``: ``optuna.load_study`` on the same database, then ``ask`` ->
  ``sample_config`` (the same define-by-run space) -> 20 x ``report`` /
  ``should_prune`` -> ``tell``.

The sides alternate by fifths of the study (lrsearch's first fifth, Optuna's
first fifth, ...), so that the load of a shared machine falls on both alike;
workers are restarted for every fifth, so the first trial of each worker also
measures how long a worker needs to join a study of that size.

Measured per fifth: wall and client CPU (the worker process's CPU time) per
trial and worker, server transactions and rows read per trial (the delta of
``pg_stat_database`` for the database, which nothing else may use meanwhile),
and on lrsearch's side how long each claim and each finish held the study
lock. ``--scale 4,16`` then runs lrsearch alone on a fresh study with that
many workers for ``--scale-trials`` trials each and reports trials/s, with the
lock-bound ceiling ``1 / (lock held per trial)``.

Usage::

    .venv/bin/python bench/overhead.py --url postgresql+psycopg://root@127.0.0.1:5432/ovh_e \\
        [--trials 2000 | --quick] [--workers 4] [--sides lrsearch,optuna] \\
        [--scale 4,16] [--scale-trials 400] [--out overhead.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

EPOCHS = 20
DEFAULT_URL = "postgresql+psycopg://root@127.0.0.1:5432/ovh_e"


def definition(name: str, n_trials: int) -> dict[str, Any]:
    """The study both sides run: lrsearch's defaults, 20 epochs, no confirmation phase."""
    return {
        "name": name,
        "task": "synthetic",
        "budget": {"n_trials": n_trials, "max_epochs": EPOCHS},
        "sampler": {"type": "tpe", "seed": 0},
        "pruner": {"type": "hyperband", "min_epochs": 1},
        "confirm": {"top_k": 0, "seeds": 0},
    }


def objective(learning_rate: float, epoch: int) -> float:
    """The no-op training's validation accuracy: best near lr = 1e-2, rising with epochs."""
    quality = math.exp(-((math.log10(learning_rate) + 2.0) ** 2))
    return 0.25 + 0.7 * quality * (1.0 - 0.7 ** (epoch + 1))


# -- worker processes ------------------------------------------------------------


class _Timeline:
    """Per-trial wall and CPU seconds of one worker process, written as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("a")
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.first = True

    def trial(self, number: int, state: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        row = {"n": number, "state": state, "wall": wall - self.wall, "cpu": cpu - self.cpu}
        row["t"] = time.time()
        # The first trial of a worker includes joining the study (sampler slot, history).
        row["first"] = self.first
        self.fh.write(json.dumps(row) + "\n")
        self.fh.flush()
        self.wall, self.cpu, self.first = wall, cpu, False

    def lock(self, where: str, wait_ms: float, held_ms: float) -> None:
        self.fh.write(json.dumps({"lock": where, "wait": wait_ms, "held": held_ms}) + "\n")


def _time_study_lock(timeline: _Timeline) -> None:
    """Time every hold of the study lock, by the module that takes it."""
    from lrsearch.storage import _claims, _finish, _lock, _retry, _stale

    original = _lock.study_lock

    def make(where: str) -> Any:
        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            asked = time.perf_counter()
            with original(*args, **kwargs) as conn:
                got = time.perf_counter()
                yield conn
            done = time.perf_counter()
            timeline.lock(where, (got - asked) * 1e3, (done - got) * 1e3)

        return timed

    for module, where in ((_claims, "claim"), (_finish, "finish"), (_retry, "retry")):
        module.study_lock = make(where)  # type: ignore[attr-defined]
    _stale.study_lock = make("sweep")  # type: ignore[attr-defined]


def _noop_train(config: Any, task: Any, *, trial: Any, **_: Any) -> Any:
    from lrsearch.workers.training import TrainResult

    metrics: list[dict[str, float]] = []
    for epoch in range(config.max_epochs):
        value = objective(config.learning_rate, epoch)
        metrics.append(
            {
                "epoch": epoch,
                "train_loss": 1.0 - value,
                "val_loss": 1.0 - value,
                "val_accuracy": value,
                "lr": config.learning_rate,
                "seconds": 0.0,
            }
        )
        trial.report(value, epoch)
        if trial.should_prune():
            lrs = [config.learning_rate] * (epoch + 1)
            return TrainResult(value, epoch + 1, lrs, metrics, "pruned")
    lrs = [config.learning_rate] * config.max_epochs
    return TrainResult(metrics[-1]["val_accuracy"], config.max_epochs, lrs, metrics)


def run_lrsearch_worker(url: str, study: str, trials: int, out: Path) -> None:
    from lrsearch.workers import loop

    timeline = _Timeline(out)
    _time_study_lock(timeline)
    loop.train_trial = _noop_train  # type: ignore[assignment]
    options = loop.WorkerOptions(
        storage_url=url,
        study=study,
        device="cpu",
        max_trials=trials,
        idle_exit=30,
        install_signal_handlers=False,
    )
    loop.run_worker(options, on_trial=lambda o: timeline.trial(o.number, o.state))


def run_optuna_worker(url: str, study_name: str, trials: int, out: Path, slot: int) -> None:
    import optuna

    from lrsearch.search_space import parse_definition

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    timeline = _Timeline(out)
    spec = parse_definition(definition(study_name, 1))
    study = optuna.load_study(
        study_name=study_name,
        storage=url,
        # Seeded per worker, as lrsearch salts its seed per sampler slot.
        sampler=optuna.samplers.TPESampler(seed=slot),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS),
    )
    for _ in range(trials):
        timeline.trial(*ask_run_tell(study, spec))


def ask_run_tell(study: Any, spec: Any) -> tuple[int, str]:
    """One plain Optuna trial of the no-op training: ask, sample, 20 reports, tell."""
    import optuna

    from lrsearch.search_space import sample_config

    trial = study.ask()
    config = sample_config(trial, spec)
    state = optuna.trial.TrialState.COMPLETE
    for epoch in range(EPOCHS):
        value = objective(config.learning_rate, epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            state = optuna.trial.TrialState.PRUNED
            break
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return trial.number, state.name


def seed_study(url: str, study_name: str, n: int) -> None:
    """Add ``n`` finished trials to the study, as if ``n`` trials had run before.

    For ``--start-at``: growing a study to 10,000 trials through the loops takes
    hours on a small machine. The trials are sampled by a seeded random sampler
    from the same space, with the same no-op objective, and judged by the same
    Hyperband pruner (lrsearch's; its decisions and rung attributes are Optuna's
    own), in memory under the study's name (a trial's bracket depends on it),
    then copied into the study in bulk: params, values, intermediate values and
    the pruner's system attributes. On lrsearch's side its sweep then writes
    their summary rows, as for any trial that finished without one; they have
    no run rows and none of the user attrs a worker writes (``worker``,
    ``lr_curve``, ``metrics``...).
    """
    _copy_trials(url, study_name, seeded_trials(study_name, n))
    from lrsearch import storage

    backend = storage.open_backend(url)
    try:
        try:
            record = storage.get_study(backend, study_name)
        except storage.StudyNotFoundError:
            return  # plain Optuna's side
        # lrsearch's side: its summary rows, as its sweep backfills them for
        # trials that finished without one (else the first worker would).
        study = storage.load_optuna_study(backend, record)
        storage.fail_stale_trials(backend, study, record, grace_s=3600.0)
    finally:
        backend.dispose()


def seeded_trials(study_name: str, n: int) -> list[Any]:
    """The ``n`` trials :func:`seed_study` adds, run in memory (the same for the same name)."""
    import optuna

    from lrsearch.search_space import make_pruner, parse_definition

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = parse_definition(definition(study_name, n))
    memory = optuna.create_study(
        study_name=study_name,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=12345),
        pruner=make_pruner(spec),
    )
    for _ in range(n):
        ask_run_tell(memory, spec)
    return memory.get_trials(deepcopy=False)


def _copy_trials(url: str, study_name: str, trials: list[Any]) -> None:
    """Insert finished trials into Optuna's tables in bulk (``add_trial`` is one at a time)."""
    import json as _json

    import optuna
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    engine = sa.create_engine(url)
    study_id = optuna.storages.RDBStorage(url).get_study_id_from_name(study_name)
    value_repr = models.TrialValueModel.value_to_stored_repr
    step_repr = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
    with engine.begin() as conn:
        for start in range(0, len(trials), 500):
            batch = trials[start : start + 500]
            ids = (
                conn.execute(
                    models.TrialModel.__table__.insert().returning(
                        models.TrialModel.__table__.c.trial_id, sort_by_parameter_order=True
                    ),
                    [
                        {
                            "number": t.number,
                            "study_id": study_id,
                            "state": t.state,
                            "datetime_start": t.datetime_start,
                            "datetime_complete": t.datetime_complete,
                        }
                        for t in batch
                    ],
                )
                .scalars()
                .all()
            )
            values, steps, params, attrs = [], [], [], []
            for trial_id, t in zip(ids, batch, strict=True):
                if t.value is not None:
                    value, kind = value_repr(t.value)
                    values.append(
                        {"trial_id": trial_id, "objective": 0, "value": value, "value_type": kind}
                    )
                for step, v in t.intermediate_values.items():
                    stored, step_kind = step_repr(v)
                    steps.append(
                        {
                            "trial_id": trial_id,
                            "step": step,
                            "intermediate_value": stored,
                            "intermediate_value_type": step_kind,
                        }
                    )
                for name, dist in t.distributions.items():
                    params.append(
                        {
                            "trial_id": trial_id,
                            "param_name": name,
                            "param_value": dist.to_internal_repr(t.params[name]),
                            "distribution_json": distribution_to_json(dist),
                        }
                    )
                for key, v in t.system_attrs.items():
                    attrs.append({"trial_id": trial_id, "key": key, "value_json": _json.dumps(v)})
            for model, rows in (
                (models.TrialValueModel, values),
                (models.TrialIntermediateValueModel, steps),
                (models.TrialParamModel, params),
                (models.TrialSystemAttributeModel, attrs),
            ):
                if rows:
                    conn.execute(model.__table__.insert(), rows)
    engine.dispose()


# -- the driver ------------------------------------------------------------------


def _server_counts(engine: sa.Engine) -> tuple[int, int]:
    """(transactions committed, rows read) of our database so far."""
    time.sleep(1.2)  # backends flush their statistics at most once a second
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(
            sa.text(
                "SELECT xact_commit, tup_returned + tup_fetched FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        ).one()
    return int(row[0]), int(row[1])


def _run_workers(
    side: str, url: str, study: str, workers: int, per_worker: int, tmp: Path, tag: str
) -> tuple[list[dict[str, Any]], float]:
    """Start ``workers`` processes of one side for ``per_worker`` trials each; their rows."""
    procs, files = [], []
    start = time.perf_counter()
    for i in range(workers):
        path = tmp / f"{tag}-{side}-{i}.jsonl"
        files.append(path)
        cmd = [sys.executable, __file__, "--_worker", side, "--url", url, "--_study", study]
        cmd += ["--_trials", str(per_worker), "--_out", str(path), "--_slot", str(i)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        log = (tmp / f"{tag}-{side}-{i}.log").open("wb")
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))
    for i, proc in enumerate(procs):
        if proc.wait() != 0:
            text = (tmp / f"{tag}-{side}-{i}.log").read_text()[-3000:]
            raise RuntimeError(f"a {side} worker exited with {proc.returncode}:\n{text}")
    elapsed = time.perf_counter() - start
    rows = [json.loads(line) for path in files if path.exists() for line in path.open()]
    return rows, elapsed


def _summary(rows: list[dict[str, Any]], elapsed: float, xacts: int, reads: int) -> dict[str, Any]:
    trials = [r for r in rows if "n" in r]
    steady = [r for r in trials if not r["first"]] or trials
    locks: dict[str, list[float]] = {}
    for r in rows:
        if "lock" in r:
            locks.setdefault(r["lock"], []).append(r["held"])
    n = max(len(trials), 1)
    # Steady throughput: from the moment every worker has joined (its first trial done).
    joined = max((r["t"] for r in trials if r["first"]), default=0.0)
    later = [r["t"] for r in trials if r["t"] > joined]
    span = max(later, default=joined) - joined
    out: dict[str, Any] = {
        "trials": len(trials),
        "seconds": round(elapsed, 2),
        "trials_per_s": round(len(trials) / elapsed, 2),
        "steady_trials_per_s": round(len(later) / span, 2) if span > 0 else None,
        "wall_ms": round(1e3 * statistics.fmean(r["wall"] for r in steady), 1),
        "cpu_ms": round(1e3 * statistics.fmean(r["cpu"] for r in steady), 1),
        "join_s": round(max((r["wall"] for r in trials if r["first"]), default=0.0), 2),
        "pruned": sum(r["state"] == "PRUNED" for r in trials),
        "xacts_per_trial": round(xacts / n, 1),
        "rows_read_per_trial": round(reads / n),
    }
    if locks:
        out["lock_held_ms_per_trial"] = round(sum(sum(v) for v in locks.values()) / n, 1)
        out["lock_held_ms_p50"] = {k: round(statistics.median(v), 1) for k, v in locks.items()}
        out["lock_wait_ms_per_trial"] = round(sum(r["wait"] for r in rows if "lock" in r) / n, 1)
    return out


def _create(side: str, url: str, name: str, n_trials: int) -> None:
    import optuna

    from lrsearch import storage
    from lrsearch.search_space import parse_definition

    if side == "lrsearch":
        backend = storage.open_backend(url)
        try:
            storage.create_study(backend, parse_definition(definition(name, n_trials)))
        finally:
            backend.dispose()
    else:
        optuna.create_study(study_name=name, storage=url, direction="maximize")


def _segments(args: argparse.Namespace, engine: sa.Engine, tmp: Path) -> dict[str, Any]:
    sides = args.sides.split(",")
    names = {side: f"ovh-{side}-{uuid.uuid4().hex[:6]}" for side in sides}
    for side in sides:
        _create(side, args.url, names[side], args.start_at + args.trials)
    if args.start_at:
        started = time.perf_counter()
        seeders = [
            subprocess.Popen(
                [
                    *(sys.executable, __file__, "--_worker", "seed", "--url", args.url),
                    *("--_study", names[side], "--_trials", str(args.start_at)),
                ],
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            for side in sides
        ]
        if any(p.wait() != 0 for p in seeders):
            raise RuntimeError("seeding the studies failed")
        seconds = time.perf_counter() - started
        print(f"seeded {args.start_at} trials per study in {seconds:.0f} s", flush=True)
    per_worker = args.trials // 5 // args.workers
    fifths: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for fifth in range(5):
        for side in sides:
            before = _server_counts(engine)
            rows, elapsed = _run_workers(
                side, args.url, names[side], args.workers, per_worker, tmp, f"f{fifth}"
            )
            after = _server_counts(engine)
            xacts, reads = after[0] - before[0], after[1] - before[1]
            row = _summary(rows, elapsed, xacts, reads)
            fifths[side].append(row)
            print(f"fifth {fifth + 1} {side:8s} {json.dumps(row)}", flush=True)
    return {"studies": names, "fifths": fifths}


def _scale(args: argparse.Namespace, engine: sa.Engine, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workers in [int(w) for w in args.scale.split(",") if w]:
        name = f"ovh-scale{workers}-{uuid.uuid4().hex[:6]}"
        per_worker = max(args.scale_trials // workers, 2)
        _create("lrsearch", args.url, name, per_worker * workers)
        before = _server_counts(engine)
        rows, elapsed = _run_workers(
            "lrsearch", args.url, name, workers, per_worker, tmp, f"s{workers}"
        )
        after = _server_counts(engine)
        row = _summary(rows, elapsed, after[0] - before[0], after[1] - before[1])
        held = row.get("lock_held_ms_per_trial") or 0.0
        row["lock_bound_trials_per_s"] = round(1e3 / held, 1) if held else None
        out[str(workers)] = row
        print(f"scale {workers:2d} workers {json.dumps(row)}", flush=True)
    return out


def _table(result: dict[str, Any]) -> str:
    lines = [
        "| fifth | side | wall ms/trial | CPU ms/trial | xacts/trial | rows read/trial "
        "| lock held ms/trial | join s | trials/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for side, fifths in result["fifths"].items():
        for i, row in enumerate(fifths, 1):
            lines.append(
                f"| {i} | {side} | {row['wall_ms']} | {row['cpu_ms']} | {row['xacts_per_trial']} "
                f"| {row['rows_read_per_trial']} | {row.get('lock_held_ms_per_trial', '-')} "
                f"| {row['join_s']} | {row['trials_per_s']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 trials, a smoke test")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sides", default="lrsearch,optuna")
    parser.add_argument("--scale", default="", help="e.g. 4,16: lrsearch trials/s by workers")
    parser.add_argument("--scale-trials", type=int, default=400)
    parser.add_argument(
        "--start-at",
        type=int,
        default=0,
        help="first add this many finished trials to each study (see seed_study)",
    )
    parser.add_argument("--out", type=Path, default=None)
    for hidden in ("--_worker", "--_study", "--_out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--_trials", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_slot", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker == "lrsearch":
        run_lrsearch_worker(args.url, args._study, args._trials, Path(args._out))
        return 0
    if args._worker == "seed":
        seed_study(args.url, args._study, args._trials)
        return 0
    if args._worker == "optuna":
        run_optuna_worker(args.url, args._study, args._trials, Path(args._out), args._slot)
        return 0
    if args.quick:
        args.trials = 300
    if args.trials % (5 * args.workers):
        parser.error(f"--trials must be a multiple of 5 x --workers ({5 * args.workers})")
    from lrsearch import storage

    storage.open_backend(args.url).dispose()  # the schema, before any worker starts
    engine = sa.create_engine(args.url)
    result: dict[str, Any] = {
        "trials": args.trials,
        "workers": args.workers,
        "start_at": args.start_at,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.trials:
            result.update(_segments(args, engine, Path(tmp)))
            print(_table(result))
        if args.scale:
            result["scale"] = _scale(args, engine, Path(tmp))
    engine.dispose()
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
