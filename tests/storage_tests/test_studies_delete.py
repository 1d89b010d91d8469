"""Deleting a study removes Optuna's rows and ours, all or nothing."""

from __future__ import annotations

import uuid

import optuna
import pytest
import sqlalchemy as sa
from optuna.storages._rdb import models as optuna_models

from lrsearch import storage
from lrsearch.storage import Backend
from lrsearch.storage._tables import studies, trial_results, trial_runs
from tests.storage_tests.helpers import Step, definition, play
from tests.storage_tests.migration_helpers import execute

STEPS = [
    Step("step", "COMPLETE", 0.8, (0.5, 0.8)),
    Step("cosine", "PRUNED", None, (0.2,)),
    Step("step", "FAIL", None, (0.1,)),
    Step("cosine", "RUNNING", None, (0.3,)),
    Step("exponential", "BASELINE"),
]


def _rows(backend: Backend, study_id: int) -> dict[str, int]:
    """Rows that belong to the study, per table (Optuna's and ours)."""
    metadata = optuna_models.BaseModel.metadata
    trials = metadata.tables["trials"]
    trial_ids = sa.select(trials.c.trial_id).where(trials.c.study_id == study_id)
    counts: dict[str, int] = {}
    with backend.engine.connect() as conn:
        for table in [*metadata.sorted_tables, studies, trial_results, trial_runs]:
            if "study_id" in table.c:
                where = table.c.study_id == study_id
            elif "trial_id" in table.c:
                where = table.c.trial_id.in_(trial_ids)
            else:
                continue
            n = conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar()
            counts[table.name] = int(n or 0)
    return counts


def test_delete_removes_every_row_of_the_study_and_nothing_else(backend: Backend) -> None:
    doomed = play(backend, definition(budget={"n_trials": 5}), STEPS)
    kept = play(backend, definition(budget={"n_trials": 5}), STEPS)
    before = _rows(backend, doomed.record.study_id)
    # The study did write to these tables, so "zero after" means something.
    for table in ("trials", "trial_params", "trial_intermediate_values", "lrsearch_trials"):
        assert before[table] > 0, table
    assert before["lrsearch_trial_runs"] == 1
    kept_before = _rows(backend, kept.record.study_id)

    storage.delete_study(backend, doomed.record.name)

    assert set(_rows(backend, doomed.record.study_id).values()) == {0}
    assert _rows(backend, kept.record.study_id) == kept_before
    with pytest.raises(storage.StudyNotFoundError):
        storage.get_study(backend, doomed.record.name)
    with pytest.raises(KeyError):
        optuna.load_study(study_name=doomed.record.optuna_name, storage=backend.optuna_storage)
    # The name is free again.
    storage.create_study(backend, doomed.record.definition)


def test_delete_of_an_unknown_study_raises(backend: Backend) -> None:
    with pytest.raises(storage.StudyNotFoundError):
        storage.delete_study(backend, f"missing-{uuid.uuid4().hex[:8]}")


def test_delete_with_a_tenant_touches_only_that_tenant(backend: Backend) -> None:
    defn = definition()
    other = f"t{uuid.uuid4().hex[:8]}"
    mine = storage.create_study(backend, defn)
    storage.create_study(backend, defn, tenant=other)
    with pytest.raises(storage.AmbiguousStudyError):
        storage.delete_study(backend, defn.name)
    storage.delete_study(backend, defn.name, tenant=other)
    with pytest.raises(storage.StudyNotFoundError):
        storage.delete_study(backend, defn.name, tenant=other)
    assert storage.get_study(backend, defn.name).study_id == mine.study_id


def _refuse_deleting_optuna_studies(backend: Backend) -> None:
    """A trigger that fails the last statement of the delete (Optuna's ``studies`` row)."""
    if backend.dialect == "sqlite":
        execute(
            backend.url,
            "CREATE TRIGGER keep_studies BEFORE DELETE ON studies "
            "BEGIN SELECT RAISE(ABORT, 'studies are kept'); END",
        )
        return
    execute(
        backend.url,
        "CREATE FUNCTION keep_studies() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'studies are kept'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER keep_studies BEFORE DELETE ON studies "
        "FOR EACH ROW EXECUTE FUNCTION keep_studies()",
    )


def test_a_delete_that_fails_half_way_leaves_the_study_whole(fresh_backend: Backend) -> None:
    played = play(fresh_backend, definition(budget={"n_trials": 5}), STEPS)
    before = _rows(fresh_backend, played.record.study_id)
    _refuse_deleting_optuna_studies(fresh_backend)
    with pytest.raises((sa.exc.SQLAlchemyError, storage.StorageError), match="studies are kept"):
        storage.delete_study(fresh_backend, played.record.name)
    assert _rows(fresh_backend, played.record.study_id) == before
    assert storage.get_study(fresh_backend, played.record.name).study_id == played.record.study_id
