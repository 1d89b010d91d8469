"""Engines and the Optuna storage, built from one SQLAlchemy URL."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lrsearch.storage._tables import metadata

DEFAULT_URL = "sqlite:///lrsearch.db"
log = logging.getLogger(__name__)


def resolve_url(url: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The storage URL: ``url`` if given, else ``LRSEARCH_STORAGE``, else the SQLite default."""
    if url:
        return url
    env = os.environ if env is None else env
    return env.get("LRSEARCH_STORAGE") or DEFAULT_URL


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def default_application_name() -> str:
    """The name our PostgreSQL sessions show in ``pg_stat_activity``: ``lrsearch:<pid>``."""
    return f"lrsearch:{os.getpid()}"


def _engine_kwargs(url: str, pool_size: int, application_name: str | None) -> dict[str, Any]:
    if is_sqlite(url):
        # Several processes share one file: wait for locks instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        # A restarted server leaves dead sockets in the pool; test each on checkout.
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "connect_args": {
            "connect_timeout": 10,
            # Lets operators (and tests) see whose sessions these are, and that
            # none is left behind once the process has gone.
            "application_name": application_name or default_application_name(),
        },
    }


def make_engine(url: str, *, pool_size: int = 2, application_name: str | None = None) -> Engine:
    """An engine for our own tables, sized for one worker or one service process.

    Args:
        url: SQLAlchemy URL.
        pool_size: Connections kept open; as many again may be opened at peaks.
        application_name: PostgreSQL ``application_name`` of every session
            (default ``lrsearch:<pid>``); ignored for SQLite.
    """
    engine = sa.create_engine(url, **_engine_kwargs(url, pool_size, application_name))
    if is_sqlite(url):

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

    return engine


@dataclass
class Backend:
    """One process's handle on the shared storage: our engine plus Optuna's storage."""

    url: str
    engine: Engine
    optuna_storage: optuna.storages.RDBStorage
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection (ours and Optuna's)."""
        self.engine.dispose()
        self.optuna_storage.engine.dispose()


def open_backend(
    url: str | None = None, *, pool_size: int = 2, application_name: str | None = None
) -> Backend:
    """Connect to the storage, creating Optuna's schema and our tables if missing.

    On PostgreSQL the schema is created under a session advisory lock, so that
    many processes starting at once against an empty database do not race on
    ``CREATE TABLE`` (which fails with a unique violation in the catalog).

    Args:
        url: SQLAlchemy URL; default :func:`resolve_url`.
        pool_size: Per engine (ours and Optuna's); see :func:`make_engine`.
        application_name: PostgreSQL ``application_name`` of both engines' sessions.
    """
    url = resolve_url(url)
    engine = make_engine(url, pool_size=pool_size, application_name=application_name)
    try:
        with _schema_lock(engine):
            with warnings.catch_warnings():
                # Optuna warns about its own experimental arguments; we pass none, but
                # older versions warn on engine kwargs for SQLite.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna_storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=_engine_kwargs(url, pool_size, application_name)
                )
            try:
                if is_sqlite(url):
                    sa.event.listen(optuna_storage.engine, "connect", _sqlite_busy_timeout)
                metadata.create_all(engine)
            except BaseException:
                optuna_storage.engine.dispose()
                raise
    except BaseException:
        # A half-opened backend must not keep connections (the caller retries).
        engine.dispose()
        raise
    return Backend(url=url, engine=engine, optuna_storage=optuna_storage)


# Advisory-lock key (namespace "LR", id 0) of schema creation; study locks use
# ids >= 1 (Optuna's study ids) in the same namespace.
_SCHEMA_LOCK = {"ns": 0x4C52, "key": 0}


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        # Session-level, not transaction-level: the DDL runs on other connections.
        conn.execute(sa.text("SELECT pg_advisory_lock(:ns, :key)"), _SCHEMA_LOCK)
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"), _SCHEMA_LOCK)


def _sqlite_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()
