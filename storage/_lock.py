"""A cross-process lock per study, held while trials are counted and created.

PostgreSQL: a transaction-scoped advisory lock, so any host can take it.
SQLite (one machine by definition): an exclusive ``flock`` on a file beside the
database. Holding a SQLite write transaction instead would block Optuna's own
connection, which must write while we hold the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage._engine import Backend

_LOCK_NAMESPACE = 0x4C52  # "LR": keeps our advisory locks apart from other users'
_thread_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _sqlite_lock_path(backend: Backend) -> str:
    database = backend.engine.url.database
    if not database or database == ":memory:":
        raise ValueError("SQLite storage must be a file to be shared between workers")
    return os.path.abspath(database) + ".lock"


@contextlib.contextmanager
def study_lock(backend: Backend, study_id: int) -> Iterator[Connection]:
    """Hold the study's lock; yields a connection on our engine.

    On PostgreSQL the connection is in one transaction that commits on exit; on
    SQLite every statement commits at once (the file lock gives the exclusion).
    """
    if backend.dialect == "postgresql":
        with backend.engine.begin() as conn:
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:ns, :sid)"),
                {"ns": _LOCK_NAMESPACE, "sid": study_id},
            )
            yield conn
        return
    path = _sqlite_lock_path(backend)
    with _guard:
        tlock = _thread_locks.setdefault(path, threading.Lock())
    with tlock, open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            # Autocommit: an open SQLite write transaction here would block
            # Optuna's connection, which writes while we hold the file lock.
            with backend.engine.connect() as conn:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
