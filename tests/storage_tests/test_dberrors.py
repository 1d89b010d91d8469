"""The engines raise the storage's own errors, translated in one ``handle_error`` event.

Real databases, real driver errors: a value out of a column's range, a NUL
byte, a dead connection, a refused one. Optuna's engine keeps the errors
Optuna itself catches.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from lrsearch import storage
from lrsearch.storage import Backend


def test_a_value_out_of_range_is_invalid_input_and_keeps_its_cause(backend: Backend) -> None:
    with backend.engine.connect() as conn, pytest.raises(storage.InvalidInputError) as info:
        # Beyond 64 bits: sqlite3 overflows binding it, PostgreSQL's INTEGER cast refuses it.
        conn.execute(sa.select(sa.cast(sa.bindparam("v", 2**64, type_=sa.Integer), sa.Integer)))
    assert info.value.__cause__ is not None
    # The connection is still usable afterwards.
    with backend.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_nul_bytes_are_invalid_input_on_postgresql(backend: Backend) -> None:
    if backend.dialect != "postgresql":
        pytest.skip("SQLite stores NUL bytes in text")
    with backend.engine.connect() as conn, pytest.raises(storage.InvalidInputError, match="NUL"):
        conn.execute(sa.select(sa.literal("a\x00b", sa.String)))
    # Optuna's engine too: a study name from a request reaches Optuna's queries.
    with pytest.raises(storage.InvalidInputError):
        backend.optuna_storage.get_study_id_from_name("a\x00b")


def test_a_bad_statement_is_a_bug_not_an_outage(backend: Backend) -> None:
    for engine in (backend.engine, backend.optuna_storage.engine):
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as info:
            conn.execute(sa.text("SELECT * FROM no_such_table_anywhere"))
        assert not isinstance(info.value, storage.StorageError)


def test_refused_connections_are_storage_unavailable() -> None:
    # Port 1: nothing listens there, so the connection is refused at once.
    engine = storage.make_engine("postgresql+psycopg://root@127.0.0.1:1/none")
    try:
        with pytest.raises(storage.StorageUnavailableError), engine.connect():
            pass
    finally:
        engine.dispose()


def test_a_killed_session_is_reconnected_by_pre_ping_not_reported(backend: Backend) -> None:
    """Pre-ping failures must reach the pool untranslated, or it could not reconnect."""
    if backend.dialect != "postgresql":
        pytest.skip("PostgreSQL sessions only")
    name = f"lrsearch-dberrors-{uuid.uuid4().hex[:8]}"
    engine = storage.make_engine(backend.url, application_name=name)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        # Only our own test session, by its unique application_name.
        with backend.engine.begin() as admin:
            killed = admin.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
        assert killed == 1
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 2")).scalar_one() == 2
    finally:
        engine.dispose()
