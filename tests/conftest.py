"""Fixtures shared by every test package: the real databases the tests talk to."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

DEFAULT_POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def postgres_url_or_skip() -> str:
    """The PostgreSQL test URL if the server answers; otherwise skip (or fail in CI)."""
    url = os.environ.get("LRSEARCH_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        reason = f"PostgreSQL unreachable at {url}: {str(exc).splitlines()[0]}"
        if os.environ.get("LRSEARCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (LRSEARCH_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_url() -> str:
    return postgres_url_or_skip()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lrsearch.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once on a temporary SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lrsearch.db'}"
    else:
        yield postgres_url_or_skip()


@pytest.fixture
def study_name() -> str:
    """A unique study name: the PostgreSQL test database is shared and never wiped."""
    return f"t-{uuid.uuid4().hex[:12]}"
