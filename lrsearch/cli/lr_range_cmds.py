"""``lrsearch lr-range TASK``: the learning-rate range test on its own.

Prints the chosen bounds (``--json``: the whole curve too) and, with
``--plot FILE.png``, draws the curve with the bounds marked when matplotlib is
installed. matplotlib is not a dependency of lrsearch; without it the bounds
are still printed and the command says how to get the plot.

Exit codes: 0 done, 1 the plot was asked for but matplotlib is missing,
2 an unknown task or bad arguments.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_NO_PLOT = 1
EXIT_BAD_INPUT = 2


def register(app: typer.Typer) -> None:
    """Add the ``lr-range`` command to ``app``."""
    app.command("lr-range")(lr_range)


def lr_range(
    task: Annotated[str, typer.Argument(help="A registered task, e.g. digits-mlp.")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the curve to this PNG (needs matplotlib).")
    ] = None,
    batches: Annotated[int, typer.Option(min=3, max=10_000, help="At most this many steps.")] = 150,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step.")] = 64,
    optimizer: Annotated[str, typer.Option(help="sgd, adam, adamw, rmsprop or adagrad.")] = "sgd",
    start_lr: Annotated[float, typer.Option(help="The first step's learning rate.")] = 1e-6,
    end_lr: Annotated[float, typer.Option(help="The last step's learning rate.")] = 10.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
    options: Annotated[
        str | None, typer.Option("--options", help="Task options as JSON, e.g. '{\"hidden\": 64}'.")
    ] = None,
    data_seed: Annotated[int, typer.Option(min=0, help="The task's train/validation split.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run the LR range test on TASK and print the learning-rate bounds it chooses."""
    from lrsearch.workers import TaskError
    from lrsearch.workers.lr_range import FLAT_FALL, lr_range_test
    from lrsearch.workers.tasks import get_task

    try:
        task_options = json.loads(options) if options is not None else {}
        if not isinstance(task_options, dict):
            raise ValueError(f"--options must be a JSON object, got {options}")
        found = lr_range_test(
            get_task(task, task_options),
            batches=batches,
            start_lr=start_lr,
            end_lr=end_lr,
            batch_size=batch_size,
            optimizer=optimizer,
            device=device,
            data_seed=data_seed,
        )
    except (TaskError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    result = found.to_json()
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"task {task}: learning rate from {found.low:.3g} to {found.high:.3g}")
        typer.echo(
            f"steepest fall at {found.steepest:.3g}; {len(found.lrs)} batches"
            + (" (stopped early: the loss diverged)" if found.diverged else "")
        )
        if found.flat:
            typer.echo(
                f"warning: the loss stayed flat (never {FLAT_FALL:.0%} below its start): "
                "no rate trained, so these bounds say nothing; try more --batches",
                err=True,
            )
    if plot is not None and not _write_plot(plot, result):
        raise typer.Exit(EXIT_NO_PLOT)


def _write_plot(path: Path, result: dict[str, Any]) -> bool:
    try:
        # Optional and untyped here: imported by name so that lrsearch neither
        # needs matplotlib installed nor its stubs to type-check.
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")  # no display needed
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        typer.echo(
            f"error: --plot needs matplotlib, which is not installed; {path} was not written "
            "(pip install matplotlib, or use --json and plot lrs/losses yourself)",
            err=True,
        )
        return False
    fig, ax = plt.subplots(figsize=(6, 4), layout="tight")
    ax.plot(result["lrs"], result["losses"])
    ax.set_xscale("log")
    ax.axvspan(result["low"], result["high"], alpha=0.2, label="chosen range")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.set_title(f"LR range test: {result['settings']['task']}")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    typer.echo(f"wrote {path}", err=True)
    return True
