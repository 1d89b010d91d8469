"""Entry point of the ``lrsearch`` console script.

The only module allowed to import both :mod:`service` and :mod:`workers`; it does
so lazily, inside each command, so ``lrsearch worker`` never loads FastAPI and
``lrsearch serve`` never loads torch.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

import lrsearch
from lrsearch.cli import (
    client_cmds,
    db_cmds,
    export_cmds,
    lr_range_cmds,
    serve_cmds,
    study_cmds,
    worker_cmds,
)


class _App(typer.Typer):
    """The console script: storage errors an operator must fix print as one line.

    An unsupported ``LRSEARCH_STORAGE``, a schema at another version or a study
    name that several tenants use is not a bug, so any command reports it
    without a traceback.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            # Imported here: loading storage at import time would slow every command.
            from lrsearch.storage import (
                AmbiguousStudyError,
                SchemaVersionError,
                UnsupportedStorageError,
            )

            if not isinstance(
                exc, UnsupportedStorageError | SchemaVersionError | AmbiguousStudyError
            ):
                raise
            typer.echo(f"error: {exc}", err=True)
            raise SystemExit(1) from None


app = _App(
    name="lrsearch",
    help="Hyperparameter search over learning-rate schedules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lrsearch {lrsearch.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed lrsearch version and exit.",
        ),
    ] = False,
) -> None:
    """Hyperparameter search over learning-rate schedules."""


worker_cmds.register(app)
serve_cmds.register(app)
client_cmds.register(app)
study_cmds.register(app)
db_cmds.register(app)
export_cmds.register(app)
lr_range_cmds.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
