"""Driver errors become the storage's own, in one place: an engine ``handle_error`` event.

Every statement that our engines (and Optuna's) run passes through SQLAlchemy's
``handle_error`` hook when it fails, so translating there covers every query
without a ``try`` around each one. What is translated, and why:

- ``DataError`` (PostgreSQL: integer out of range, NUL byte in text; SQLite:
  ``OverflowError`` for an int beyond 64 bits) -> :class:`InvalidInputError`:
  the value came from a caller, so it is a client error (4xx), not a bug.
- ``OperationalError`` / ``InterfaceError`` -> :class:`StorageUnavailableError`
  (the database is down, restarting, locked, or timed out: retry later),
  except SQLite's reports of a bad statement ("no such table", "syntax
  error"), which are bugs. On Optuna's engine only connection failures are
  translated: Optuna itself retries deadlocks and falls back on "too many SQL
  variables" by catching ``OperationalError``, and that must keep working.
- ``IntegrityError`` is left alone: storage functions turn the one they expect
  (a duplicate name) into :class:`StudyAlreadyExistsError`, and Optuna relies
  on catching it; any other one is a bug to see as a 500, not to hide.

Pre-ping failures are never translated: the pool must see them to reconnect.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine, ExceptionContext

from lrsearch.storage._errors import InvalidInputError, StorageUnavailableError

_UNAVAILABLE = "the database is unavailable; retry later"
# sqlite3 raises OperationalError for these too, but they are bugs, not outages.
_SQLITE_BUGS = ("no such table", "no such column", "syntax error", "too many SQL variables")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _is_connection_failure(ctx: ExceptionContext) -> bool:
    # No connection yet: the failure happened while connecting.
    return ctx.is_disconnect or ctx.connection is None


def translate(ctx: ExceptionContext, *, all_operational: bool) -> Exception | None:
    """The project's error for a failed statement, or ``None`` to let SQLAlchemy's through.

    Args:
        ctx: What SQLAlchemy knows about the failure.
        all_operational: Translate every ``OperationalError``; ``False`` limits
            it to connection failures (Optuna's engine, see the module docstring).
    """
    if ctx.is_pre_ping:
        return None
    wrapped = ctx.sqlalchemy_exception
    original = ctx.original_exception
    if isinstance(wrapped, sa.exc.DataError) or isinstance(original, OverflowError):
        return InvalidInputError(f"the database rejected a value: {_first_line(original)}")
    if not isinstance(wrapped, sa.exc.OperationalError | sa.exc.InterfaceError):
        return None
    if _is_connection_failure(ctx):
        return StorageUnavailableError(_UNAVAILABLE)
    if all_operational and not any(bug in str(original) for bug in _SQLITE_BUGS):
        return StorageUnavailableError(_UNAVAILABLE)
    return None


def install_error_translation(engine: Engine, *, all_operational: bool = True) -> None:
    """Make ``engine`` raise :mod:`storage` errors instead of the driver's (see module doc).

    Args:
        engine: Our engine, or Optuna's (then pass ``all_operational=False``).
        all_operational: See :func:`translate`.
    """

    @sa.event.listens_for(engine, "handle_error")
    def _translate(ctx: ExceptionContext) -> None:
        error = translate(ctx, all_operational=all_operational)
        if error is not None:
            # Raised (not returned) so that no later handler replaces it; SQLAlchemy
            # chains it "from" the driver's error, which keeps the cause in the log.
            raise error
