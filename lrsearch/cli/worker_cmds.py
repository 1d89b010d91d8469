"""``lrsearch worker`` and ``lrsearch demo``."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from lrsearch.workers.settings import WorkerSettings


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _require_torch(command: str) -> None:
    """Exit 2 with the fix when torch is missing (the base install is the service's)."""
    try:
        import torch  # noqa: F401 - the worker loads it anyway
    except ImportError:
        typer.echo(
            f"error: lrsearch {command} trains with PyTorch, which is not installed here; "
            "install the worker extra: pip install 'lrsearch[worker]'",
            err=True,
        )
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``demo`` to ``app``."""
    app.command("worker")(worker)
    app.command("demo")(demo)


def worker(
    study: Annotated[
        str | None, typer.Option(help="Serve only this study (env LRSEARCH_STUDY).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda or cuda:N (env LRSEARCH_DEVICE; auto).")
    ] = None,
    max_trials: Annotated[int | None, typer.Option(help="Exit after this many trials.")] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Exit after this many seconds without work.")
    ] = None,
    bf16: Annotated[
        bool | None,
        typer.Option("--bf16/--no-bf16", help="bfloat16 autocast on CUDA (env LRSEARCH_BF16)."),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="Start one supervised worker process per GPU: 'all' or e.g. 0,1. "
            "With --device cpu the processes train on CPU (testing without GPUs) "
            "(env LRSEARCH_GPUS).",
        ),
    ] = None,
    trials_per_gpu: Annotated[
        int | None,
        typer.Option(
            min=1, help="With --gpus: worker processes per GPU (env LRSEARCH_TRIALS_PER_GPU; 1)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads of PyTorch in each worker process (env LRSEARCH_THREADS; "
            "the cores divided by the worker processes on this host).",
        ),
    ] = None,
    pack: Annotated[
        str | None,
        typer.Option(
            metavar="K|auto",
            help="Train up to K (1 to 256) compatible trials of a study fused in one program "
            "(same batch size and optimizer; env LRSEARCH_PACK; 1: one at a time). auto: "
            "16 for models without convolutions on CPU, 1 otherwise (where measured to help).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
) -> None:
    """Pull trials from the shared storage (LRSEARCH_STORAGE) and train them."""
    _require_torch("worker")
    _setup_logging(verbose)
    overrides = {
        "study": study,
        "device": device,
        "bf16": bf16,
        "gpus": gpus,
        "trials_per_gpu": trials_per_gpu,
        "threads": threads,
        "pack": pack,
    }
    settings = _worker_settings({k: v for k, v in overrides.items() if v is not None})
    if settings.gpus:
        _supervise(settings, max_trials, idle_exit, verbose)
        return
    from lrsearch import storage
    from lrsearch.workers import DeviceError
    from lrsearch.workers.device import apply_threads
    from lrsearch.workers.loop import WorkerOptions, run_worker
    from lrsearch.workers.settings import resolve_threads

    apply_threads(resolve_threads(settings))
    import torch

    logging.getLogger("lrsearch.workers").info(
        "PyTorch uses %d CPU thread(s) (--threads, LRSEARCH_THREADS)", torch.get_num_threads()
    )
    options = WorkerOptions(
        storage_url=settings.storage,
        study=settings.study,
        device=settings.device,
        max_trials=max_trials,
        idle_exit=idle_exit,
        bf16=settings.bf16,
        heartbeat_s=settings.heartbeat_s,
        grace_s=settings.grace_s,
        stop_timeout_s=settings.stop_timeout_s,
        label=settings.worker_label,
        pack=settings.pack,
    )
    try:
        stats = run_worker(options, on_trial=_print_outcome)
    except (DeviceError, storage.StudyNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"worker done: {stats.trials} trials {stats.by_state}", err=True)


def _worker_settings(overrides: dict[str, Any]) -> WorkerSettings:
    """The worker's settings: options first, then LRSEARCH_* variables; exit 2 listing problems."""
    from pydantic import ValidationError

    from lrsearch.workers.settings import WorkerSettings, env_name

    try:
        return WorkerSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"error: {exc.error_count()} problem(s) in the worker's settings:", err=True)
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            where = f"--{field.replace('_', '-')}" if field in overrides else env_name(field)
            typer.echo(f"  {where}: {error['msg']} (got {error.get('input')!r})", err=True)
        raise typer.Exit(2) from None


def _supervise(
    settings: WorkerSettings, max_trials: int | None, idle_exit: float | None, verbose: bool
) -> None:
    """``worker --gpus``: one ``lrsearch worker`` child per GPU slot, pinned and supervised."""
    import torch

    from lrsearch.workers import DeviceError
    from lrsearch.workers.supervisor import Supervisor, parse_gpus

    device, gpus = settings.device, settings.gpus or ""
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
    # The children read the rest of their settings from the same environment.
    child = [sys.executable, "-m", "lrsearch.cli.main", "worker"]
    child += ["--device", "cpu" if on_cpu else "cuda:0"]
    if settings.study is not None:
        child += ["--study", settings.study]
    if max_trials is not None:
        child += ["--max-trials", str(max_trials)]
    if idle_exit is not None:
        child += ["--idle-exit", str(idle_exit)]
    if settings.bf16:
        child.append("--bf16")
    if settings.pack != 1:
        child += ["--pack", str(settings.pack)]
    if verbose:
        child.append("--verbose")
    # The children stop within their own stop timeout; allow them that and some.
    stop_timeout = settings.stop_timeout_s + 15.0
    supervisor = Supervisor(
        ids,
        child,
        trials_per_gpu=settings.trials_per_gpu,
        stop_timeout_s=stop_timeout,
        threads=settings.threads,
    )
    raise typer.Exit(supervisor.run())


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
    """Run a whole study on the embedded SQLite storage and print the best schedules.

    With --serve, the port is taken before training starts (a busy port fails
    at once), and afterwards the service runs on it with API keys on: the
    printed dashboard link carries a new read key.
    """
    _require_torch("demo")
    sock = None
    if serve:
        from lrsearch.cli.serve_cmds import reserve_port

        sock = reserve_port(host, port)
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
    from lrsearch.cli.client_cmds import masked_url

    typer.echo(f"storage: {masked_url(url)}")
    typer.echo(
        f"study {name}: task digits-mlp, {trials} trials x up to {DEMO_EPOCHS} epochs, "
        "6 schedule types, TPE sampler, Hyperband pruner"
    )
    from lrsearch.workers.loop import WorkerOptions, run_worker

    finished = confirmed = 0

    def progress(outcome: Any) -> None:
        nonlocal finished, confirmed
        if outcome.confirmation_of is None:
            finished += 1
            _print_outcome(outcome, budget=trials, done=finished)
        else:
            confirmed += 1
            typer.echo(f"[confirm {confirmed:>2}] re-trains #{outcome.confirmation_of} ", nl=False)
            _print_outcome(outcome)

    started = time.monotonic()
    run_worker(
        WorkerOptions(storage_url=url, study=name, device="auto", idle_exit=5.0),
        on_trial=progress,
    )
    elapsed = time.monotonic() - started
    done = f"{finished} trials" + (f" and {confirmed} confirmations" if confirmed else "")
    typer.echo(f"\nfinished {done} in {elapsed:.0f} s\n")
    typer.echo(best_schedules_table(backend, storage.get_study(backend, name)))
    backend.dispose()
    if serve:
        from lrsearch.cli.serve_cmds import serve_demo

        serve_demo(url=url, study=name, host=host, port=port, sock=sock)


def best_schedules_table(backend: Any, record: Any) -> str:
    """The best trial per schedule type, in the same table as ``lrsearch best``.

    Each winner's scheduler as PyTorch takes it goes in the last column, written
    by the same function as for ``lrsearch best``.
    """
    from lrsearch.cli.best_across import with_pytorch_column
    from lrsearch.cli.client_cmds import schedules_table
    from lrsearch.search_space import trial_settings
    from lrsearch.storage import confirmed_leaderboard

    def settings(best: Any) -> dict[str, Any] | None:
        found = None if best is None else trial_settings(record.definition, best.params)
        return None if found is None else asdict(found)  # the API's `settings` shape

    # The API's shapes, so that the table is the one `lrsearch best` prints.
    with backend.engine.connect() as conn:
        stats = [
            asdict(e.stats)
            | {
                "settings": settings(e.stats.best),
                "confirmed": None if e.confirmed is None else asdict(e.confirmed),
            }
            for e in confirmed_leaderboard(conn, record)
        ]
    study = {
        "name": record.name,
        "metric": record.definition.objective.metric,
        "direction": record.direction,
    }
    return with_pytorch_column(schedules_table(study, stats), stats)
