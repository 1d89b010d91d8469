"""Deleting a study: Optuna's rows and ours, in one transaction.

Optuna's ``delete_study`` commits on its own connection, so calling it and then
deleting our rows could leave one half behind on a crash. Instead every row is
deleted with SQL on one connection: Optuna's tables are taken from Optuna's own
model metadata (every table with a ``study_id`` or ``trial_id`` column, children
first), so a table a newer Optuna adds is covered too. On PostgreSQL the
study's advisory lock is held meanwhile, so a claim cannot add a trial halfway.
"""

from __future__ import annotations

import sqlalchemy as sa
from optuna.storages._rdb import models as optuna_models

from lrsearch.storage._engine import Backend
from lrsearch.storage._lock import _LOCK_NAMESPACE
from lrsearch.storage._studies import read_study
from lrsearch.storage._tables import studies, study_aggregates, trial_results, trial_runs


def delete_study(backend: Backend, name: str, *, tenant: str | None = None) -> None:
    """Delete the study, its trials and our records of them, all or nothing.

    Args:
        backend: The shared storage.
        name: The study's name.
        tenant: Only this tenant's study; ``None`` for trusted callers.

    Raises:
        StudyNotFoundError: No such study (in that tenant).
        AmbiguousStudyError: ``tenant`` is ``None`` and several tenants have the name.
    """
    with backend.engine.begin() as conn:
        record = read_study(name, conn=conn, tenant=tenant)
        sid = record.study_id
        if conn.dialect.name == "postgresql":
            # The same key as storage._lock.study_lock: claims wait for us.
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:ns, :sid)"),
                {"ns": _LOCK_NAMESPACE, "sid": sid},
            )
        for table in (trial_runs, trial_results, study_aggregates, studies):
            conn.execute(table.delete().where(table.c.study_id == sid))
        _delete_optuna_rows(conn, sid)


def _delete_optuna_rows(conn: sa.Connection, study_id: int) -> None:
    metadata = optuna_models.BaseModel.metadata
    trials = metadata.tables["trials"]
    trial_ids = sa.select(trials.c.trial_id).where(trials.c.study_id == study_id)
    # Children before parents: no foreign key is ever left dangling mid-way.
    for table in reversed(metadata.sorted_tables):
        if table.name in ("trials", "studies"):
            continue
        if "trial_id" in table.c:
            conn.execute(table.delete().where(table.c.trial_id.in_(trial_ids)))
        elif "study_id" in table.c:
            conn.execute(table.delete().where(table.c.study_id == study_id))
    conn.execute(trials.delete().where(trials.c.study_id == study_id))
    study_table = metadata.tables["studies"]
    conn.execute(study_table.delete().where(study_table.c.study_id == study_id))
