"""``lrsearch worker`` and ``lrsearch demo``."""

from __future__ import annotations

import logging
import sys
import time
from typing import Annotated, Any

import typer


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``demo`` to ``app``."""
    app.command("worker")(worker)
    app.command("demo")(demo)


def worker(
    study: Annotated[
        str | None, typer.Option(help="Serve only this study.", envvar="LRSEARCH_STUDY")
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="LRSEARCH_DEVICE")
    ] = "auto",
    max_trials: Annotated[int | None, typer.Option(help="Exit after this many trials.")] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Exit after this many seconds without work.")
    ] = None,
    bf16: Annotated[
        bool, typer.Option(help="bfloat16 autocast on CUDA.", envvar="LRSEARCH_BF16")
    ] = False,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="Start one supervised worker process per GPU: 'all' or e.g. 0,1. "
            "With --device cpu the processes train on CPU (testing without GPUs).",
            envvar="LRSEARCH_GPUS",
        ),
    ] = None,
    trials_per_gpu: Annotated[
        int,
        typer.Option(
            min=1, help="With --gpus: worker processes per GPU.", envvar="LRSEARCH_TRIALS_PER_GPU"
        ),
    ] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Pull trials from the shared storage (LRSEARCH_STORAGE) and train them."""
    _setup_logging(verbose)
    if gpus:
        _supervise(gpus, trials_per_gpu, device, study, max_trials, idle_exit, bf16, verbose)
        return
    from lrsearch import storage
    from lrsearch.workers import DeviceError
    from lrsearch.workers.loop import WorkerOptions, run_worker

    options = WorkerOptions(
        study=study, device=device, max_trials=max_trials, idle_exit=idle_exit, bf16=bf16
    )
    try:
        stats = run_worker(options, on_trial=_print_outcome)
    except (DeviceError, storage.StudyNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"worker done: {stats.trials} trials {stats.by_state}", err=True)


def _supervise(
    gpus: str,
    trials_per_gpu: int,
    device: str,
    study: str | None,
    max_trials: int | None,
    idle_exit: float | None,
    bf16: bool,
    verbose: bool,
) -> None:
    """``worker --gpus``: one ``lrsearch worker`` child per GPU slot, pinned and supervised."""
    import torch

    from lrsearch.workers import DeviceError
    from lrsearch.workers.loop import WorkerOptions
    from lrsearch.workers.supervisor import Supervisor, parse_gpus

    if device not in ("auto", "cuda", "cpu"):
        typer.echo(
            f"error: --gpus pins each worker process to one GPU (cuda:0 inside it); "
            f"use --device auto, cuda or cpu, not {device!r}",
            err=True,
        )
        raise typer.Exit(2)
    on_cpu = device == "cpu"
    try:
        ids = parse_gpus(gpus, device_count=torch.cuda.device_count(), check=not on_cpu)
    except DeviceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    child = [sys.executable, "-m", "lrsearch.cli.main", "worker"]
    child += ["--device", "cpu" if on_cpu else "cuda:0"]
    if study is not None:
        child += ["--study", study]
    if max_trials is not None:
        child += ["--max-trials", str(max_trials)]
    if idle_exit is not None:
        child += ["--idle-exit", str(idle_exit)]
    if bf16:
        child.append("--bf16")
    if verbose:
        child.append("--verbose")
    # The children stop within their own stop timeout; allow them that and some.
    stop_timeout = WorkerOptions().stop_timeout_s + 15.0
    code = Supervisor(ids, child, trials_per_gpu=trials_per_gpu, stop_timeout_s=stop_timeout).run()
    raise typer.Exit(code)


def _print_outcome(outcome: Any, *, budget: int | None = None, done: int | None = None) -> None:
    p = outcome.params
    count = f"[{done:>3}/{budget}] " if budget is not None and done is not None else ""
    value = "-" if outcome.value is None else f"{outcome.value:.4f}"
    line = (
        f"{count}{outcome.study} #{outcome.number:<4} {p.get('schedule', '?'):<11} "
        f"lr={p.get('learning_rate', float('nan')):.2e} bs={p.get('batch_size', '?'):<4} "
        f"{outcome.state:<8} value={value:<7} {outcome.epochs_run:>3} ep {outcome.seconds:5.1f}s"
    )
    if outcome.error:
        line += f"  ({outcome.error})"
    typer.echo(line)


DEMO_EPOCHS = 20
DEMO_TRIALS = 100

# One hand-written baseline per schedule type, enqueued first so that every type
# is represented however the sampler explores afterwards.
DEMO_BASELINES: list[dict[str, Any]] = [
    {"schedule": "step", "step.step_size": 5, "step.gamma": 0.5},
    {"schedule": "exponential", "exponential.gamma": 0.9},
    {"schedule": "cosine", "cosine.eta_min": 0.01},
    {"schedule": "plateau", "plateau.factor": 0.5, "plateau.patience": 2},
    {
        "schedule": "cyclic",
        "cyclic.max_lr": 4.0,
        "cyclic.step_size": 2,
        "cyclic.mode": "triangular",
    },
    {"schedule": "warmup", "warmup.start_factor": 0.1, "warmup.ramp_epochs": 3},
]


def demo_definition(name: str) -> dict[str, Any]:
    """The demo study: every schedule type on digits, TPE, Hyperband pruning."""
    return {
        "name": name,
        "task": "digits-mlp",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "budget": {"n_trials": DEMO_TRIALS, "max_epochs": DEMO_EPOCHS},
        "sampler": {"type": "tpe", "seed": 0},
        "pruner": {"type": "hyperband", "min_epochs": 4},
    }


def demo(
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep the service up for the dashboard afterwards.")
    ] = False,
    trials: Annotated[int, typer.Option(help="Trial budget of the demo study.")] = DEMO_TRIALS,
    host: Annotated[str, typer.Option(help="With --serve: address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --serve: port.")] = 8000,
) -> None:
    """Run a whole study on the embedded SQLite storage and print the best schedules."""
    _setup_logging()
    logging.getLogger().setLevel(logging.WARNING)
    from lrsearch import storage
    from lrsearch.search_space import parse_definition, validate_fixed_params

    url = storage.resolve_url()
    backend = storage.open_backend(url)
    name = time.strftime("demo-digits-%Y%m%d-%H%M%S")
    raw = demo_definition(name)
    raw["budget"]["n_trials"] = trials
    definition = parse_definition(raw)
    record = storage.create_study(backend, definition)
    study = storage.load_optuna_study(backend, record)
    common = {"learning_rate": 0.05, "batch_size": 64, "dropout": 0.1, "weight_init": "default"}
    low, high = definition.warmup_bounds()
    if low != high:
        common["warmup_epochs"] = 0
    for baseline in DEMO_BASELINES[: max(0, min(len(DEMO_BASELINES), trials))]:
        params = {**common, **baseline}
        validate_fixed_params(definition, params)
        storage.enqueue_fixed(backend, study, record, params)
    typer.echo(f"storage: {url}")
    typer.echo(
        f"study {name}: task digits-mlp, {trials} trials x up to {DEMO_EPOCHS} epochs, "
        "6 schedule types, TPE sampler, Hyperband pruner"
    )
    from lrsearch.workers.loop import WorkerOptions, run_worker

    finished = 0

    def progress(outcome: Any) -> None:
        nonlocal finished
        finished += 1
        _print_outcome(outcome, budget=trials, done=finished)

    started = time.monotonic()
    run_worker(
        WorkerOptions(storage_url=url, study=name, device="auto", idle_exit=5.0),
        on_trial=progress,
    )
    elapsed = time.monotonic() - started
    typer.echo(f"\nfinished {finished} trials in {elapsed:.0f} s\n")
    typer.echo(best_schedules_table(backend, storage.get_study(backend, name)))
    backend.dispose()
    if serve:
        from lrsearch.cli.client_cmds import serve_demo

        serve_demo(url=url, study=name, host=host, port=port)


def best_schedules_table(backend: Any, record: Any) -> str:
    """The best trial per schedule type, in the same table as ``lrsearch best``."""
    from dataclasses import asdict

    from lrsearch.cli.client_cmds import schedules_table
    from lrsearch.storage import best_per_schedule

    with backend.engine.connect() as conn:
        stats = [asdict(s) for s in best_per_schedule(conn, record)]
    study = {
        "name": record.name,
        "metric": record.definition.objective.metric,
        "direction": record.direction,
    }
    return schedules_table(study, stats)
