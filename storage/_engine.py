"""Engines and the Optuna storage, built from one SQLAlchemy URL."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lrsearch.storage._dberrors import install_error_translation
from lrsearch.storage._errors import UnsupportedStorageError
from lrsearch.storage._migrations import (
    check_optuna_schema,
    upgrade_optuna_schema,
    upgrade_schema,
)
from lrsearch.storage._settings import DEFAULT_STORAGE_URL, CommonSettings

DEFAULT_URL = DEFAULT_STORAGE_URL
log = logging.getLogger(__name__)


def resolve_url(url: str | None = None) -> str:
    """The storage URL: ``url`` if given, else ``LRSEARCH_STORAGE``, else the SQLite default."""
    return url or CommonSettings().storage_url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


SUPPORTED_STORAGE = (
    "SQLite (sqlite:///FILE) and PostgreSQL through psycopg (postgresql+psycopg://...)"
)


def check_url(url: str) -> str:
    """The URL if lrsearch supports its database, with ``postgresql://`` made explicit.

    Only SQLite and PostgreSQL (driver psycopg, the one installed) are tested;
    another database would half-work (Optuna's schema, our locks and clock are
    dialect-specific), so it is refused up front.

    Raises:
        UnsupportedStorageError: Not a URL, or another database or driver.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise UnsupportedStorageError(
            f"the storage {url!r} is not a database URL; lrsearch supports {SUPPORTED_STORAGE}"
        ) from None
    if parsed.drivername in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        return url
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise UnsupportedStorageError(
        f"unsupported storage {parsed.drivername!r} (in {parsed}): "
        f"lrsearch supports {SUPPORTED_STORAGE}"
    )


def default_application_name() -> str:
    """The name our PostgreSQL sessions show in ``pg_stat_activity``: ``lrsearch:<pid>``."""
    return f"lrsearch:{os.getpid()}"


def _engine_kwargs(
    url: str, pool_size: int, application_name: str | None, pre_ping: bool = True
) -> dict[str, Any]:
    if is_sqlite(url):
        # Several processes share one file: wait for locks instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        # A restarted server leaves dead sockets in the pool; test each on checkout,
        # unless the caller retries every call itself (see open_backend).
        "pool_pre_ping": pre_ping,
        "pool_recycle": 1800,
        "connect_args": {
            "connect_timeout": 10,
            # Lets operators (and tests) see whose sessions these are, and that
            # none is left behind once the process has gone.
            "application_name": application_name or default_application_name(),
        },
    }


def make_engine(
    url: str,
    *,
    pool_size: int = 2,
    application_name: str | None = None,
    pre_ping: bool = True,
) -> Engine:
    """An engine for our own tables, sized for one worker or one service process.

    Args:
        url: SQLAlchemy URL.
        pool_size: Connections kept open; as many again may be opened at peaks.
        application_name: PostgreSQL ``application_name`` of every session
            (default ``lrsearch:<pid>``); ignored for SQLite.
        pre_ping: Test every pooled connection on checkout (PostgreSQL);
            see :func:`open_backend`.

    Raises:
        UnsupportedStorageError: See :func:`check_url`.
    """
    url = check_url(url)
    engine = sa.create_engine(url, **_engine_kwargs(url, pool_size, application_name, pre_ping))
    if is_sqlite(url):

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

    install_error_translation(engine)
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
    url: str | None = None,
    *,
    pool_size: int = 2,
    application_name: str | None = None,
    pre_ping: bool = True,
) -> Backend:
    """Connect to the storage: create Optuna's schema if missing, migrate our tables.

    Our tables are brought to the newest migration (a database of lrsearch
    0.1.0 is recognised and upgraded in place); Optuna's tables must already be
    at the installed Optuna's revision (``lrsearch db upgrade`` otherwise).
    On PostgreSQL all of it runs under a session advisory lock, so that many
    processes starting at once against an empty database do not race on
    ``CREATE TABLE`` (which fails with a unique violation in the catalog); on
    SQLite under an exclusive ``flock`` on the file beside the database, and our
    migration in one ``BEGIN IMMEDIATE`` transaction.

    Args:
        url: SQLAlchemy URL; default :func:`resolve_url`.
        pool_size: Per engine (ours and Optuna's); see :func:`make_engine`.
        application_name: PostgreSQL ``application_name`` of both engines' sessions.
        pre_ping: Test each pooled connection with a round trip before use
            (PostgreSQL), so that a restarted server costs no failed call. A
            caller that retries every call on :class:`StorageUnavailableError`
            (the worker loop) turns it off: without it, the first statement on
            a dead connection fails, SQLAlchemy invalidates the whole pool
            (every connection older than the failure), and the retry connects
            afresh. It saves one round trip per checkout.

    Raises:
        UnsupportedStorageError: Not SQLite or PostgreSQL through psycopg.
        SchemaVersionError: Optuna's tables are at another revision, or ours
            at one this code does not know.
    """
    backend, _ = _open(
        url, pool_size=pool_size, application_name=application_name, pre_ping=pre_ping
    )
    return backend


def upgrade_database(url: str | None = None) -> list[str]:
    """Bring Optuna's tables and ours to the installed code's revisions (``lrsearch db upgrade``).

    Returns:
        One line per thing done; empty when everything was current.

    Raises:
        UnsupportedStorageError: See :func:`check_url`.
        SchemaVersionError: A newer Optuna or lrsearch wrote the schema.
    """
    backend, done = _open(url, pool_size=1, application_name=None, upgrade_optuna=True)
    backend.dispose()
    return done


def _open(
    url: str | None,
    *,
    pool_size: int,
    application_name: str | None,
    upgrade_optuna: bool = False,
    pre_ping: bool = True,
) -> tuple[Backend, list[str]]:
    url = check_url(resolve_url(url))
    engine = make_engine(
        url, pool_size=pool_size, application_name=application_name, pre_ping=pre_ping
    )
    done: list[str] = []
    try:
        with _schema_lock(engine):
            with warnings.catch_warnings():
                # Optuna warns about its own experimental arguments; we pass none, but
                # older versions warn on engine kwargs for SQLite.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Checked below with our own message, which names our command.
                optuna_storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url, pool_size, application_name, pre_ping),
                    skip_compatibility_check=True,
                )
            try:
                install_error_translation(optuna_storage.engine, all_operational=False)
                if is_sqlite(url):
                    sa.event.listen(optuna_storage.engine, "connect", _sqlite_busy_timeout)
                if upgrade_optuna:
                    done += upgrade_optuna_schema(optuna_storage)
                check_optuna_schema(optuna_storage)
                done += _migrate(engine, url)
            except BaseException:
                optuna_storage.engine.dispose()
                raise
    except BaseException:
        # A half-opened backend must not keep connections (the caller retries).
        engine.dispose()
        raise
    for line in done:
        log.info("schema: %s", line)
    return Backend(url=url, engine=engine, optuna_storage=optuna_storage), done


def _migrate(engine: Engine, url: str) -> list[str]:
    """Our migrations, in one transaction (PostgreSQL: DDL is transactional too)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        with engine.begin() as conn:
            return upgrade_schema(conn)
    # pysqlite neither begins a transaction before DDL nor takes the write lock
    # up front: on a connection of our own, BEGIN IMMEDIATE makes the whole
    # migration atomic and serialises processes migrating the same file.
    migrator = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"timeout": 60})

    @sa.event.listens_for(migrator, "connect")
    def _no_implicit_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(migrator, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with migrator.begin() as conn:
            return upgrade_schema(conn)
    finally:
        migrator.dispose()


# Advisory-lock key (namespace "LR", id 0) of schema creation; study locks use
# ids >= 1 (Optuna's study ids) in the same namespace.
_SCHEMA_LOCK = {"ns": 0x4C52, "key": 0}


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "sqlite":
        with _sqlite_schema_lock(engine.url.database):
            yield
        return
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


@contextlib.contextmanager
def _sqlite_schema_lock(database: str | None) -> Iterator[None]:
    """An exclusive ``flock`` while the schema is created: Optuna's ``create_all``
    races between processes opening a new file at once ("table already exists").

    The file is the one beside the database that study locks use (one machine:
    SQLite), so no new file appears; nobody holds a study lock while opening.
    """
    if not database or database == ":memory:":
        yield
        return
    with open(os.path.abspath(database) + ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _sqlite_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()
