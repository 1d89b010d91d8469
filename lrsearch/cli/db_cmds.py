"""``lrsearch db upgrade``: bring the storage's schema to this release's.

Exit codes: 0 done (or nothing to do), 1 the upgrade failed (unsupported URL,
a schema written by a newer release, the database unreachable).
"""

from __future__ import annotations

import typer

EXIT_FAILED = 1

db_app = typer.Typer(
    name="db",
    help="Database schema commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade() -> None:
    """Apply the schema migrations (Optuna's and lrsearch's) to LRSEARCH_STORAGE."""
    import sqlalchemy as sa

    from lrsearch import storage

    url = storage.resolve_url()
    try:
        shown = str(sa.engine.make_url(storage.check_url(url)))  # password hidden
        done = storage.upgrade_database(url)
    except (storage.StorageError, sa.exc.SQLAlchemyError) as exc:
        # One line, no traceback: these are the operator's to fix, not bugs.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: schema upgrade failed: {first}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    for line in done:
        typer.echo(line)
    typer.echo(f"{shown}: schema is current" if not done else f"{shown}: schema upgraded")
