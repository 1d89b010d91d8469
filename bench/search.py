"""Search quality per epoch spent: random vs plain Optuna vs lrsearch's defaults.

Three methods, each over ``--seeds`` sampler seeds, every one with the same
task, search space, model, training loop (``workers.train_trial``), data
split (``data_seed`` 0) and per-trial training seed:

- ``random``: lrsearch's worker loop, random sampler, no pruner;
- ``optuna``: plain Optuna written directly (``optuna.create_study`` with its
  defaults: TPE seeded, median pruner, in memory) around the same objective;
- ``lrsearch``: lrsearch's worker loop with the definition's defaults (only
  the sampler seed set);
- ``lrsearch-plain-pruner``: the same with ``pruner: {schedule_aware: false}``
  (the default pruner judging warm-up and cyclic trials like any other);
- ``lrsearch-nobalance``: the same with ``sampler: {balance_schedules: false}``
  (TPE chooses the schedule type too, no first round per type);
- ``lrsearch-late``: balancing from half the budget on, every trial a priority
  trial then (``sampler: {balance_start: 0.5, balance_every: 1}``): TPE
  exploits first, the leaderboard is filled afterwards;
- ``lrsearch-noprotect``: balancing, but ``sampler: {protect_priority: false}``
  (the pruner may stop the trials that keep a type alive);
- ``lrsearch-pack``: lrsearch's defaults, the worker packing up to
  ``PACK_K`` (8) trials (``lrsearch worker --pack 8``): a pack's trials share
  batch size and optimizer, and the sampler sees up to 8 trials in flight;
- ``warm`` / ``cold``: per seed, a first study (lrsearch's defaults, sampler
  seed s), then a second one with sampler seed s + 1000, with (``warm``:
  ``warm_start: {from: [first], top_k: 1}``) or without (``cold``) a warm
  start; reported: epochs each needs to reach the first study's best.

No method runs a confirmation phase (``confirm: {top_k: 0}``): plain Optuna
cannot, and re-training winners would only add to lrsearch's epochs.

Reported: the target (random's median full-budget best) and the epochs each
run needed to reach it (random also as its average over trial orders), the
best at fixed epoch budgets with the spread over seeds, how many schedule
types got at least ``--k`` completed trials, the spread of random's final
values and the best trial of each schedule type (how much the schedule
matters on this task), and a PNG of best-so-far vs epochs (if matplotlib is
installed). Everything also goes to ``<out>/search.json``.

``--reuse DIR[,DIR]`` loads the runs of the methods not in ``--methods`` from
earlier ``DIR/search.json`` files (same task, task options, trials and epochs,
and every seed asked for, possibly spread over several files; anything else is
an error), so that a new method is reported next to random and plain Optuna
without running them again. ``--methods ''`` with ``--reuse`` only reports.
``search.json`` is rewritten after every run (``"partial": true`` until the
end), so the seeds of an interrupted run can be reused too.

Usage (commands of the measured runs in docs/benchmarks.md)::

    .venv/bin/python bench/search.py --task spirals-mlp --seeds 10 --trials 60 --epochs 20
    .venv/bin/python bench/search.py --smoke           # 2 seeds x 8 trials x 3 epochs, tiny data
    .venv/bin/python bench/search.py --task digits-mlp --methods lrsearch,lrsearch-plain-pruner
    .venv/bin/python bench/search.py --methods warm,cold --seeds 3 --trials 30 --epochs 15
    .venv/bin/python bench/search.py --methods lrsearch --reuse bench-out/spirals-ro --trials 60
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
import torch

from lrsearch import storage
from lrsearch.search_space import StudyDefinition, parse_definition, sample_config
from lrsearch.workers.loop import WorkerOptions, run_worker
from lrsearch.workers.tasks import get_task
from lrsearch.workers.training import train_seed, train_trial

# A sibling script module: bench/ is on sys.path when this file runs as a script.
from search_report import (  # isort: skip
    Run,
    Trial,
    load_run,
    plot,
    report,
    summarise,
    warm_start_summary,
)

DEFAULT_METHODS = ("random", "optuna", "lrsearch")
METHODS = (
    *DEFAULT_METHODS,
    "lrsearch-plain-pruner",
    "lrsearch-nobalance",
    "lrsearch-noprotect",
    "lrsearch-pack",
    "lrsearch-late",
    "warm",
    "cold",
)
# Methods whose runs --reuse may load: the warm/cold pair also needs its first studies.
REUSABLE = tuple(m for m in METHODS if m not in ("warm", "cold"))
# Offset of the second study's sampler seed in the warm-start comparison.
SECOND_SEED = 1000
SMOKE_TASK_OPTIONS = {"n_train": 256, "n_val": 128}
# ``lrsearch-pack``: the worker's --pack.
PACK_K = 8
# ``lrsearch-late``: balancing's priority trials from this fraction of the budget on.
LATE_START = 0.5


def _raw_definition(args: argparse.Namespace, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": args.task,
        "task_options": args.task_options,
        "budget": {"n_trials": args.trials, "max_epochs": args.epochs},
        "data_seed": 0,
        # Search only: no method here re-trains winners (plain Optuna cannot), so
        # the confirmation phase would only add epochs to lrsearch's count.
        "confirm": {"top_k": 0, "seeds": 0},
    }


def _study_raw(args: argparse.Namespace, method: str, seed: int, name: str) -> dict[str, Any]:
    raw = _raw_definition(args, name)
    if method == "random":
        return raw | {"sampler": {"type": "random", "seed": seed}, "pruner": {"type": "none"}}
    raw |= {"sampler": {"type": "tpe", "seed": seed}}  # every other field: the defaults
    if method == "lrsearch-plain-pruner":
        raw["pruner"] = {"schedule_aware": False}  # the default pruner, not schedule-aware
    if method == "lrsearch-nobalance":
        raw["sampler"]["balance_schedules"] = False  # TPE alone chooses the schedule type
    if method == "lrsearch-noprotect":
        raw["sampler"]["protect_priority"] = False  # priority trials may be pruned
    if method == "lrsearch-late":
        # TPE alone for the first half (after the first round), then every trial
        # to a type short of completed trials until each has enough.
        raw["sampler"] |= {"balance_start": LATE_START, "balance_every": 1}
    return raw


def _run_study(
    args: argparse.Namespace, url: str, raw: dict[str, Any], pack: int = 1
) -> list[Trial]:
    """Create one study in ``url`` and run it with one in-process worker (``--pack pack``)."""
    name = str(raw["name"])
    backend = storage.open_backend(url)
    try:
        storage.create_study(backend, parse_definition(raw))
    finally:
        backend.dispose()
    run_worker(
        WorkerOptions(
            storage_url=url,
            study=name,
            device=args.device,
            idle_exit=5.0,
            poll_interval=0.05,
            install_signal_handlers=False,
            pack=pack,
        )
    )
    return trials_of(url, name)


def trials_of(url: str, name: str) -> list[Trial]:
    """The trials of study ``name`` in the Optuna storage at ``url``, in trial order."""
    rdb = optuna.storages.RDBStorage(url)
    try:
        frozen = optuna.load_study(study_name=name, storage=rdb).get_trials()
    finally:
        rdb.engine.dispose()
    return [
        Trial(
            number=t.number,
            state=t.state.name,
            value=t.value,
            epochs=int(t.user_attrs.get("epochs_run", len(t.intermediate_values))),
            schedule=str(t.params.get("schedule", "?")),
            learning_rate=t.params.get("learning_rate"),
        )
        for t in sorted(frozen, key=lambda t: t.number)
    ]


def _run_lrsearch(args: argparse.Namespace, method: str, seed: int, workdir: Path) -> list[Trial]:
    """One study on a fresh SQLite file, run by one in-process worker."""
    name = f"{method}-{seed}"
    url, raw = f"sqlite:///{workdir / name}.db", _study_raw(args, method, seed, name)
    return _run_study(args, url, raw, pack=PACK_K if method == "lrsearch-pack" else 1)


def _run_second_study(
    args: argparse.Namespace, method: str, seed: int, workdir: Path, firsts: dict[int, list[Trial]]
) -> list[Trial]:
    """``warm``/``cold``: a second study after a first one (lrsearch defaults, sampler ``seed``).

    Both second studies use sampler seed ``seed + SECOND_SEED``; ``warm`` also
    has ``warm_start: {from: [first], top_k: 1}``. The first study runs once
    per seed (shared by both) in the same SQLite file as the warm one.
    """
    url = f"sqlite:///{workdir / f'second-{seed}'}.db"
    first = f"first-{seed}"
    if seed not in firsts:
        firsts[seed] = _run_study(args, url, _study_raw(args, "lrsearch", seed, first))
    raw = _study_raw(args, "lrsearch", seed + SECOND_SEED, f"{method}-{seed}")
    if method == "warm":
        raw["warm_start"] = {"from": [first], "top_k": 1}
    return _run_study(args, url, raw)


def _run_plain_optuna(args: argparse.Namespace, seed: int) -> list[Trial]:
    """Plain Optuna's defaults around the same search space, model and training loop."""
    definition: StudyDefinition = parse_definition(_raw_definition(args, f"optuna-{seed}"))
    task = get_task(args.task, args.task_options)

    def objective(trial: optuna.Trial) -> float:
        config = sample_config(trial, definition)
        result = train_trial(
            config,
            task,
            objective=definition.objective.metric,
            direction=definition.direction,
            trial=trial,
            device=args.device,
            seed=train_seed(definition.data_seed, trial.number),
            data_seed=definition.data_seed,
        )
        trial.set_user_attr("epochs_run", result.epochs_run)
        if result.status == "pruned":
            raise optuna.TrialPruned
        if result.status != "complete" or result.value is None:
            return float("nan")  # Optuna records a NaN objective as FAIL
        return float(result.value)

    study = optuna.create_study(
        direction=definition.direction, sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.optimize(objective, n_trials=args.trials)
    return [
        Trial(
            number=t.number,
            state=t.state.name,
            value=t.value,
            epochs=int(t.user_attrs.get("epochs_run", len(t.intermediate_values))),
            schedule=str(t.params.get("schedule", "?")),
            learning_rate=t.params.get("learning_rate"),
        )
        for t in study.trials
    ]


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--task", default="spirals-mlp")
    parser.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, default=10, help="sampler seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"of {METHODS}")
    parser.add_argument("--k", type=int, default=3, help="completed trials a type needs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("bench-out/search"))
    parser.add_argument("--smoke", action="store_true", help="2 seeds x 8 trials x 3 epochs")
    parser.add_argument(
        "--reuse",
        default="",
        metavar="DIR[,DIR]",
        help="load the other methods' runs from DIR/search.json (same task, trials, epochs, seeds)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.trials, args.epochs = 2, 8, 3
        if not args.task_option and args.task == "spirals-mlp":
            args.task_option = [f"{k}={v}" for k, v in SMOKE_TASK_OPTIONS.items()]
    args.task_options = _options(args.task_option)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; use {list(METHODS)}")
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    args.reused = []
    if args.reuse:
        try:
            args.reused = reuse_runs(args, [Path(d) for d in args.reuse.split(",") if d])
        except ValueError as err:
            parser.error(str(err))
    reused_methods = [m for m in METHODS if m in {r.method for r in args.reused}]
    args.methods = reused_methods + args.methods
    if not args.methods:
        parser.error("no method to run or report: give --methods or --reuse")
    return args


def reuse_runs(args: argparse.Namespace, dirs: list[Path]) -> list[Run]:
    """The runs in ``dirs``' search.json of the methods ``args`` does not run.

    Raises:
        ValueError: listing every problem: a missing or unreadable file, another
            task, task options, trial count or epoch count, a seed asked for but
            in none of the files, the same method and seed in two files.
    """
    problems: list[str] = []
    runs: list[Run] = []
    seen: dict[tuple[str, int], Path] = {}
    for folder in dirs:
        path = folder / "search.json"
        try:
            payload = json.loads(path.read_text())
            saved = payload["args"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            problems.append(f"{path}: cannot read its runs ({err})")
            continue
        for key in ("task", "task_options", "trials", "epochs"):
            if saved.get(key) != getattr(args, key):
                problems.append(
                    f"{path}: {key} is {saved.get(key)!r}, this run's is {getattr(args, key)!r}"
                )
        loaded = [
            load_run(r)
            for r in payload.get("runs", [])
            if r["method"] in REUSABLE and r["method"] not in args.methods
        ]
        for r in loaded:
            if r.seed not in args.seed_list:
                continue
            if (r.method, r.seed) in seen:
                where = seen[(r.method, r.seed)]
                problems.append(f"{path}: {r.method!r} seed {r.seed} is also in {where}")
                continue
            seen[(r.method, r.seed)] = path
            runs.append(r)
        if not loaded:
            problems.append(f"{path}: no runs of a method other than {args.methods}")
    for method in dict.fromkeys(r.method for r in runs):
        missing = sorted(set(args.seed_list) - {r.seed for r in runs if r.method == method})
        if missing:
            problems.append(f"method {method!r} has no runs for seeds {missing} in {dirs}")
    if problems:
        raise ValueError("--reuse: " + "; ".join(problems))
    return sorted(runs, key=lambda r: (r.seed, r.method))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    maximize = parse_definition(_raw_definition(args, "probe")).direction == "maximize"
    runs: list[Run] = list(args.reused)
    ran = [m for m in args.methods if m not in {r.method for r in args.reused}]
    firsts: dict[int, list[Trial]] = {}  # the warm-start comparison's first studies, by seed
    with tempfile.TemporaryDirectory(prefix="lrsearch-bench-") as tmp:
        for seed in args.seed_list:
            for method in ran:
                started, cpu = time.perf_counter(), time.process_time()
                if method == "optuna":
                    trials = _run_plain_optuna(args, seed)
                elif method in ("warm", "cold"):
                    trials = _run_second_study(args, method, seed, Path(tmp), firsts)
                else:
                    trials = _run_lrsearch(args, method, seed, Path(tmp))
                wall = time.perf_counter() - started
                runs.append(Run(method, seed, wall, trials, time.process_time() - cpu))
                _save(args, runs, firsts, None)  # a run cut short keeps what it finished
                print(
                    f"{method:8s} seed {seed}: {sum(t.epochs for t in trials)} epochs, "
                    f"{runs[-1].seconds:.1f} s, CPU {runs[-1].cpu_seconds or 0:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    summary = summarise(runs, args, maximize)
    if firsts:
        summary["warm_start"] = warm_start_summary(runs, firsts, maximize)
    text = report(summary, args)
    print(text)
    print(plot(runs, args, maximize, args.out / "best_so_far.png"))
    _save(args, runs, firsts, summary)
    return 0


def _save(
    args: argparse.Namespace,
    runs: list[Run],
    firsts: dict[int, list[Trial]],
    summary: dict[str, Any] | None,
) -> None:
    """Write ``<out>/search.json``; without a summary (``"partial": true``) after each run."""
    payload = {
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "reused")}
        | {"out": str(args.out)},
        "partial": summary is None,
        "summary": summary,
        "runs": [asdict(r) for r in runs],
        "first_studies": {str(k): [asdict(t) for t in v] for k, v in firsts.items()},
    }
    tmp = args.out / "search.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(args.out / "search.json")


if __name__ == "__main__":
    sys.exit(main())
