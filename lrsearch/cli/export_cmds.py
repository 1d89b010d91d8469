"""``lrsearch export NAME --format csv|json`` and ``lrsearch best NAME --as pytorch``.

Both are REST clients (:class:`lrsearch.Client`), with the service at
``LRSEARCH_API_URL`` and the key in ``LRSEARCH_API_KEY``. Exit codes as the other
client commands: 1 a failed request, 2 bad input.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from lrsearch.client import Study

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
T = TypeVar("T")

# The summary columns first, in this order; then each Optuna parameter by name.
_FIRST = (
    "number",
    "state",
    "value",
    "schedule",
    "learning_rate",
    "batch_size",
    "dropout",
    "weight_init",
    "warmup_epochs",
    "epochs_run",
    "duration_s",
    "worker",
    "device",
    "error",
    "retry_of",
)


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    JSON = "json"


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app`` (``best --as pytorch`` lives on ``best``)."""
    app.command("export")(export)


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _study(name: str) -> Study:
    from lrsearch.client import Client
    from lrsearch.client._settings import ClientSettings

    settings = ClientSettings()
    return Client(settings.api_url, settings.api_key).study(name)


def _calling(call: Callable[[], T]) -> T:
    """``call()``, with the client's errors printed as one line and an exit code."""
    from lrsearch.client import ApiError, ClientError

    try:
        return call()
    except ApiError as exc:
        _fail(str(exc), EXIT_BAD_INPUT if exc.status == 422 else EXIT_FAILED)
    except ClientError as exc:
        _fail(str(exc))


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """The CSV header: summary columns, then every parameter name, sorted."""
    seen = {key for row in rows for key in row}
    return [c for c in _FIRST if c in seen] + sorted(seen - set(_FIRST))


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Trials as CSV, one row each; nested values (none today) as JSON text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        )
    return out.getvalue()


def export(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or json.")] = ExportFormat.CSV,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Every trial of a study (state, value, parameters) as CSV or JSON."""
    study = _study(name)
    rows = _calling(study.trial_rows)
    text = to_csv(rows) if fmt == ExportFormat.CSV else json.dumps(rows, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {len(rows)} trials to {output}", err=True)


def best_as_pytorch(name: str) -> None:
    """Print the best trial as ready-to-paste optimizer + scheduler code (``best --as pytorch``)."""
    study = _study(name)
    sys.stdout.write(_calling(study.best_as_pytorch))
