"""Schema migrations: fresh databases, 0.1.0 databases, version checks, unsupported URLs.

Every test runs on a SQLite file and on a PostgreSQL database of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lrsearch import storage
from lrsearch.cli.main import app
from lrsearch.search_space import parse_definition
from lrsearch.storage._migrations import VERSION_TABLE, head_revision
from tests.storage_tests.fixtures import tables_0_1_0
from tests.storage_tests.migration_helpers import (
    execute,
    fresh_database,
    optuna_head,
    scalar,
    schema_diff,
)

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0.db"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def _db_upgrade(url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["db", "upgrade"], env={"LRSEARCH_STORAGE": url})
    return result.exit_code, result.stdout, result.stderr


def test_fresh_database_gets_every_revision_and_matches_the_tables(fresh_url: str) -> None:
    done = storage.upgrade_database(fresh_url)
    applied = [line.split(":")[0] for line in done]
    assert applied == [f"applied revision 000{i}" for i in range(1, 5)]
    assert scalar(fresh_url, f"SELECT version_num FROM {VERSION_TABLE}") == head_revision()
    # Optuna's own version table is Optuna's: still its head, never ours.
    assert scalar(fresh_url, "SELECT version_num FROM alembic_version") == optuna_head()
    assert schema_diff(fresh_url) == []
    assert storage.upgrade_database(fresh_url) == []


def _index_names(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        return {
            str(ix["name"])
            for table in ("lrsearch_trials", "trial_user_attributes")
            for ix in inspector.get_indexes(table)
        }
    finally:
        engine.dispose()


def test_downgrade_to_0002_and_upgrade_again_round_trips_the_indexes(fresh_url: str) -> None:
    from alembic import command

    from lrsearch.storage._migrations import alembic_config

    storage.upgrade_database(fresh_url)
    added = {
        "ix_lrsearch_infeasible_attrs",
        "ix_lrsearch_confirmation_attrs",
        "ix_lrsearch_trials_study_state_number",
        "ix_lrsearch_trials_study_schedule_number",
        "ix_lrsearch_trials_study_lr",
    }
    assert added <= _index_names(fresh_url)
    engine = sa.create_engine(fresh_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
    finally:
        engine.dispose()
    assert scalar(fresh_url, f"SELECT version_num FROM {VERSION_TABLE}") == "0002"
    assert not added & _index_names(fresh_url)
    assert [line.split(":")[0] for line in storage.upgrade_database(fresh_url)] == [
        "applied revision 0003",
        "applied revision 0004",
    ]
    assert added <= _index_names(fresh_url)
    assert schema_diff(fresh_url) == []


def _create_0_1_0_database(url: str, name: str) -> int:
    """What lrsearch 0.1.0 left: Optuna's schema, our tables by create_all, one study row."""
    rdb = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=rdb, study_name=name, direction="maximize")
    rdb.engine.dispose()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    tables_0_1_0.metadata.create_all(engine)
    raw = {"name": name, "task": "synthetic", "budget": {"n_trials": 3, "max_epochs": 2}}
    definition = parse_definition(raw)
    with engine.begin() as conn:
        conn.execute(
            tables_0_1_0.studies.insert().values(
                study_id=study._study_id,
                name=name,
                tenant="acme",
                state="running",
                task="synthetic",
                direction="maximize",
                n_trials=3,
                max_epochs=2,
                max_retries=1,
                definition=definition.model_dump_json(),
                created_at=1.0,
                updated_at=1.0,
            )
        )
    engine.dispose()
    return study._study_id


def test_database_made_by_create_all_of_0_1_0_is_stamped_and_upgraded(fresh_url: str) -> None:
    study_id = _create_0_1_0_database(fresh_url, "old-study")
    backend = storage.open_backend(fresh_url)
    try:
        record = storage.get_study(backend, "old-study")
        assert (record.study_id, record.tenant) == (study_id, "acme")
        assert record.optuna_name == "old-study"
        assert record.definition_problem is None
        assert storage.load_optuna_study(backend, record)._study_id == study_id
    finally:
        backend.dispose()
    assert scalar(fresh_url, f"SELECT version_num FROM {VERSION_TABLE}") == head_revision()
    assert schema_diff(fresh_url) == []


def test_release_0_1_0_sqlite_file_opens_reads_and_db_upgrade_is_idempotent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "release.db"
    shutil.copy(FIXTURE, path)
    url = f"sqlite:///{path}"
    # What the old file holds, read through Optuna alone before our code touches it.
    rdb = optuna.storages.RDBStorage(url)
    expected = {}
    for summary in optuna.get_all_study_summaries(rdb):
        trials = optuna.load_study(study_name=summary.study_name, storage=rdb).get_trials()
        expected[summary.study_name] = (len(trials), summary.best_trial)
    rdb.engine.dispose()
    assert len(expected) == 2

    code, out, err = _db_upgrade(url)
    assert code == 0, err
    assert "stamped revision 0001" in out
    assert "applied revision 0002" in out
    code, out, err = _db_upgrade(url)
    assert (code, out.strip()) == (0, f"{url}: schema is current"), err

    backend = storage.open_backend(url)
    try:
        records = storage.list_studies(backend)
        assert sorted(r.name for r in records) == sorted(expected)
        assert {r.tenant for r in records} == {"default", "acme"}
        for record in records:
            n_trials, best = expected[record.name]
            assert record.optuna_name == record.name
            assert record.definition_problem is None
            with backend.engine.connect() as conn:
                summary = storage.study_summary(conn, record)
                row = storage.best_trial(conn, record)
            assert sum(summary.counts.values()) == n_trials
            assert row is not None
            assert best is not None
            assert (row.number, row.value) == (best.number, best.value)
        assert len(storage.list_keys(backend)) == 1
    finally:
        backend.dispose()
    assert schema_diff(url) == []


def test_our_schema_newer_than_the_code_is_refused(fresh_url: str) -> None:
    storage.upgrade_database(fresh_url)
    execute(fresh_url, f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(storage.SchemaVersionError, match="newer lrsearch"):
        storage.open_backend(fresh_url)
    code, _, err = _db_upgrade(fresh_url)
    assert code == 1
    assert "newer lrsearch" in err
    assert "Traceback" not in err


def test_optuna_schema_behind_is_refused_until_db_upgrade(fresh_url: str) -> None:
    storage.upgrade_database(fresh_url)
    # Optuna's previous schema: v3.2.0.a only added an index on trials.study_id
    # (create_all names it ix_trials_study_id, the migration trials_study_id_key).
    execute(
        fresh_url,
        "DROP INDEX ix_trials_study_id",
        "UPDATE alembic_version SET version_num = 'v3.0.0.d'",
    )
    with pytest.raises(storage.SchemaVersionError, match="lrsearch db upgrade"):
        storage.open_backend(fresh_url)
    code, out, err = _db_upgrade(fresh_url)
    assert code == 0, err
    assert f"upgraded Optuna's tables from revision v3.0.0.d to {optuna_head()}" in out
    storage.open_backend(fresh_url).dispose()


def test_optuna_schema_newer_than_installed_optuna_is_refused(fresh_url: str) -> None:
    storage.upgrade_database(fresh_url)
    execute(fresh_url, "UPDATE alembic_version SET version_num = 'v99.0.0.a'")
    with pytest.raises(storage.SchemaVersionError, match="newer Optuna"):
        storage.open_backend(fresh_url)
    code, _, err = _db_upgrade(fresh_url)
    assert code == 1
    assert "newer Optuna" in err


def test_processes_starting_together_migrate_once(fresh_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_and_close() -> None:
        try:
            barrier.wait()
            storage.open_backend(fresh_url).dispose()
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert scalar(fresh_url, f"SELECT count(*) FROM {VERSION_TABLE}") == 1
    assert schema_diff(fresh_url) == []


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user:secret@db/lrsearch",
        "mysql+pymysql://user@db/lrsearch",
        "oracle://scott@db/orcl",
        "sqlit:///lrsearch.db",
        "postgresql+psycopg2://root@127.0.0.1/x",
        "not a url",
    ],
)
def test_unsupported_storage_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(storage.UnsupportedStorageError, match="lrsearch supports") as info:
        storage.open_backend(url)
    assert "secret" not in str(info.value)
    with pytest.raises(storage.UnsupportedStorageError):
        storage.make_engine(url)
    code, out, err = _db_upgrade(url)
    assert code == 1
    assert err.startswith("error: schema upgrade failed: ")
    assert "Traceback" not in err + out
    assert "secret" not in err


def test_plain_postgresql_url_means_psycopg() -> None:
    assert storage.check_url("postgresql://root@h:5432/db") == "postgresql+psycopg://root@h:5432/db"
    assert storage.check_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("command", [["keys", "create", "--scope", "read"], ["db", "upgrade"]])
def test_console_script_reports_an_unsupported_storage_in_one_line(command: list[str]) -> None:
    env = {**os.environ, "LRSEARCH_STORAGE": "mysql://user:secret@db/lrsearch"}
    done = subprocess.run(
        [sys.executable, "-m", "lrsearch.cli.main", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "unsupported storage 'mysql'" in done.stderr
    assert "Traceback" not in done.stderr
    assert "secret" not in done.stderr
