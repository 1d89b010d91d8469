"""Schema migrations of lrsearch's own tables, and the check of Optuna's schema.

Our tables (``lrsearch_*``) are migrated by the alembic scripts in
``versions/``; their revision lives in ``lrsearch_alembic_version``, never in
Optuna's ``alembic_version``. Optuna migrates its own tables with its own
scripts; we only check that their revision is the one the installed Optuna
expects, and run Optuna's upgrade on ``lrsearch db upgrade``.

Policy: :func:`~lrsearch.storage.open_backend` applies our migrations itself
(under the schema lock), because they ship with the code that needs them; it
refuses an Optuna schema at another revision, as Optuna does, because Optuna's
upgrades are the operator's decision (``lrsearch db upgrade`` after a backup).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

# Alembic logs its plugins and "Context impl ..." at INFO on every open; what we
# applied is logged by storage itself. An application's own level wins.
for _name in ("alembic.runtime.plugins", "alembic.runtime.migration"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

import optuna  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from alembic.util import CommandError  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402

from lrsearch.storage._errors import SchemaVersionError  # noqa: E402

VERSION_TABLE = "lrsearch_alembic_version"
TABLE_PREFIX = "lrsearch_"
# The revision that describes the tables lrsearch 0.1.0 made with ``create_all``.
BASELINE = "0001"
_BASELINE_TABLES = frozenset(
    {"lrsearch_studies", "lrsearch_trials", "lrsearch_trial_runs", "lrsearch_api_keys"}
)
_SCRIPTS = Path(__file__).resolve().parent


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Alembic's filter: only our tables (autogenerate and comparisons ignore Optuna's)."""
    if type_ == "table":
        return bool(name) and str(name).startswith(TABLE_PREFIX) and name != VERSION_TABLE
    return True


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration, built in code; ``conn`` is the connection ``env.py`` migrates."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """The revision this code's tables are at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision of our tables in the database; ``None`` without a version table."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade_schema(conn: Connection) -> list[str]:
    """Bring our tables to the head revision, in the caller's transaction.

    An empty database gets every revision. A database made by lrsearch 0.1.0
    (our tables, made by ``create_all``, and no version table) is stamped with
    the baseline revision, not recreated, then upgraded.

    Returns:
        One line per thing done (empty when the schema was already current).

    Raises:
        SchemaVersionError: The database's revision is unknown to this code
            (written by a newer lrsearch), or 0.1.0's tables are only partly there.
    """
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    current = current_revision(conn)
    done: list[str] = []
    if current is None:
        present = {t for t in sa.inspect(conn).get_table_names() if t in _BASELINE_TABLES}
        if present:
            if present != _BASELINE_TABLES:
                raise SchemaVersionError(
                    "the database has some of lrsearch's tables but no version table "
                    f"(missing: {', '.join(sorted(_BASELINE_TABLES - present))}); "
                    "it was not made by lrsearch 0.1.0 and cannot be upgraded automatically"
                )
            command.stamp(alembic_config(conn), BASELINE)
            done.append(f"recognised the tables of lrsearch 0.1.0: stamped revision {BASELINE}")
            current = BASELINE
    if current == head:
        return done
    if current is not None:
        try:
            script.get_revision(current)
        except CommandError:
            raise SchemaVersionError(
                f"lrsearch's tables are at revision {current!r}, which this lrsearch does not "
                f"know (its newest is {head!r}): a newer lrsearch wrote them; upgrade lrsearch"
            ) from None
    pending = _oldest_first(script.iterate_revisions(head, current))
    command.upgrade(alembic_config(conn), "head")
    done.extend(f"applied revision {rev}: {doc}" for rev, doc in pending)
    return done


def _oldest_first(revisions: Iterable[object]) -> list[tuple[str, str]]:
    out = []
    for rev in revisions:
        doc = str(getattr(rev, "doc", "") or "").splitlines()
        out.append((str(getattr(rev, "revision", "")), doc[0] if doc else ""))
    return out[::-1]


def check_optuna_schema(rdb: optuna.storages.RDBStorage) -> None:
    """Refuse a database whose Optuna tables are not at the installed Optuna's revision.

    Raises:
        SchemaVersionError: With what to do: ``lrsearch db upgrade`` for an
            older schema, installing the newer Optuna that wrote a newer one.
    """
    current, head = rdb.get_current_version(), rdb.get_head_version()
    if current == head:
        return
    if current in rdb.get_all_versions():
        raise SchemaVersionError(
            f"the database's Optuna tables are at revision {current!r} but the installed "
            f"optuna {optuna.__version__} needs {head!r}: back the database up, then run "
            "`lrsearch db upgrade` (it runs Optuna's migrations too; "
            "`optuna storage upgrade --storage URL` does the same for Optuna's tables)"
        )
    raise SchemaVersionError(
        f"the database's Optuna tables are at revision {current!r}, which the installed "
        f"optuna {optuna.__version__} does not know: a newer Optuna wrote them; install it "
        "(or a lrsearch release that supports it)"
    )


def upgrade_optuna_schema(rdb: optuna.storages.RDBStorage) -> list[str]:
    """Run Optuna's own migrations if its tables are behind the installed Optuna.

    Raises:
        SchemaVersionError: A newer Optuna wrote the tables.
    """
    current, head = rdb.get_current_version(), rdb.get_head_version()
    if current == head:
        return []
    if current not in rdb.get_all_versions():
        check_optuna_schema(rdb)  # raises the "newer Optuna" message
    rdb.upgrade()
    return [f"upgraded Optuna's tables from revision {current} to {head}"]
