"""Engines and the Optuna storage, built from one SQLAlchemy URL."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage._tables import metadata

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


def _engine_kwargs(url: str, pool_size: int) -> dict[str, Any]:
    if is_sqlite(url):
        # Several processes share one file: wait for locks instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 10},
    }


def make_engine(url: str, *, pool_size: int = 2) -> Engine:
    """An engine for our own tables, sized for one worker or one service process."""
    engine = sa.create_engine(url, **_engine_kwargs(url, pool_size))
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


def open_backend(url: str | None = None, *, pool_size: int = 2) -> Backend:
    """Connect to the storage, creating Optuna's schema and our tables if missing."""
    url = resolve_url(url)
    engine = make_engine(url, pool_size=pool_size)
    with warnings.catch_warnings():
        # Optuna warns about its own experimental arguments; we pass none, but
        # older versions warn on engine kwargs for SQLite.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna_storage = optuna.storages.RDBStorage(
            url, engine_kwargs=_engine_kwargs(url, pool_size)
        )
    if is_sqlite(url):
        sa.event.listen(optuna_storage.engine, "connect", _sqlite_busy_timeout)
    metadata.create_all(engine)
    return Backend(url=url, engine=engine, optuna_storage=optuna_storage)


def _sqlite_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()
