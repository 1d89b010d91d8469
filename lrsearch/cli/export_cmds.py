"""``lrsearch export NAME --format csv|json`` and ``lrsearch best NAME --as pytorch``.

Both are REST clients (the client's :class:`~lrsearch.client.Study`, over the
same connection and error printing as the other client commands), with the
service at ``LRSEARCH_API_URL`` and the key in ``LRSEARCH_API_KEY``. Exit codes
as the other client commands: 1 a failed request, 2 bad input.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from lrsearch.client import Study

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


@contextmanager
def _study(name: str) -> Iterator[Study]:
    """The study over the CLI's connection; the client's errors printed as the CLI prints them.

    Reads are retried on connection errors (:class:`~lrsearch.client._http.Http`):
    an export of many pages should survive a service restart.
    """
    from lrsearch.cli.client_cmds import open_http, report_client_error
    from lrsearch.client import ClientError, Study

    client, has_key = open_http()
    try:
        yield Study(client, name)
    except ClientError as exc:
        report_client_error(exc, base=client.url, has_key=has_key)
    finally:
        client.close()


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
    with _study(name) as study:
        rows = study.trial_rows()
    text = to_csv(rows) if fmt == ExportFormat.CSV else json.dumps(rows, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {len(rows)} trials to {output}", err=True)


def best_as_pytorch(name: str) -> None:
    """Print the best trial as ready-to-paste optimizer + scheduler code (``best --as pytorch``)."""
    with _study(name) as study:
        code = study.best_as_pytorch()
    sys.stdout.write(code)
