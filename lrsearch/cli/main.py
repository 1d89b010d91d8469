"""Entry point of the ``lrsearch`` console script.

The only module allowed to import both :mod:`service` and :mod:`workers`; it does
so lazily, inside each command, so ``lrsearch worker`` never loads FastAPI and
``lrsearch serve`` never loads torch.
"""

from __future__ import annotations

import typer

from lrsearch.cli import client_cmds, worker_cmds

app = typer.Typer(
    name="lrsearch",
    help="Hyperparameter search over learning-rate schedules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
worker_cmds.register(app)
client_cmds.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
