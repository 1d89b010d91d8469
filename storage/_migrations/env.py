"""Alembic environment of lrsearch's own tables (``lrsearch_*``; Optuna migrates its own).

:func:`lrsearch.storage._migrations.upgrade_schema` builds the alembic
``Config`` in code and hands the connection over in ``config.attributes``, so
no ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

from alembic import context

from lrsearch.storage._migrations import VERSION_TABLE, include_name
from lrsearch.storage._tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # Optuna keeps its revision in ``alembic_version``: ours must never touch it.
    version_table=VERSION_TABLE,
    include_name=include_name,
    # SQLite changes constraints only by copying the table; alembic's batch mode does that.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
