"""Entry point of the ``lrsearch`` console script.

The only module allowed to import both :mod:`service` and :mod:`workers`; it does
so lazily, inside each command, so ``lrsearch worker`` never loads FastAPI and
``lrsearch serve`` never loads torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
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
            return self._call(*args, **kwargs)
        except SystemExit as done:
            if not args and not kwargs and sys.argv[1:2] == ["worker"]:
                _exit_worker_process(done.code)
            raise

    def _call(self, *args: Any, **kwargs: Any) -> Any:
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


def _exit_worker_process(code: Any) -> None:
    """End an ``lrsearch worker`` process without the interpreter's finalisation.

    By then the worker has recorded or handed back every trial and closed its
    loop. With PyTorch loaded and the worker's daemon threads (heartbeats, the
    stop watchdog) just stopped, finalisation sometimes aborted in C++ static
    destructors (``terminate called without an active exception``, SIGABRT)
    after a clean stop, turning exit status 0 into -6 for a supervisor or an
    orchestrator. Output is flushed first; the worker registers no atexit work.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


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
