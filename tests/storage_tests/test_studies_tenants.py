"""Study names are unique per tenant; Optuna names stay globally unique; trusted lookups."""

from __future__ import annotations

import uuid

import optuna
import pytest

from lrsearch import storage
from lrsearch.search_space import sample_config
from lrsearch.storage import Backend
from tests.storage_tests.helpers import definition


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def test_same_name_in_two_tenants_makes_two_studies(backend: Backend) -> None:
    defn = definition()
    other = _tenant()
    mine = storage.create_study(backend, defn)
    theirs = storage.create_study(backend, defn, tenant=other)
    assert mine.study_id != theirs.study_id
    assert mine.optuna_name == defn.name
    assert theirs.optuna_name == f"{other}/{defn.name}"
    assert storage.get_study(backend, defn.name, tenant=other).study_id == theirs.study_id
    assert storage.get_study(backend, defn.name, tenant="default").study_id == mine.study_id
    # Each record opens its own Optuna study.
    assert storage.load_optuna_study(backend, theirs)._study_id == theirs.study_id
    assert storage.load_optuna_study(backend, mine)._study_id == mine.study_id


def test_duplicate_within_a_tenant_is_refused_and_nothing_half_created(backend: Backend) -> None:
    defn = definition()
    tenant = _tenant()
    storage.create_study(backend, defn, tenant=tenant)

    def ours() -> list[str]:
        # Only this test's names: other tests may create studies meanwhile.
        return [n for n in optuna.get_all_study_names(backend.optuna_storage) if defn.name in n]

    before = ours()
    with pytest.raises(storage.StudyAlreadyExistsError):
        storage.create_study(backend, defn, tenant=tenant)
    assert ours() == before


def test_trusted_lookup_of_a_name_in_several_tenants_names_them(backend: Backend) -> None:
    defn = definition()
    a, b = sorted((_tenant(), _tenant()))
    storage.create_study(backend, defn, tenant=a)
    storage.create_study(backend, defn, tenant=b)
    with pytest.raises(storage.AmbiguousStudyError) as info:
        storage.get_study(backend, defn.name)
    assert info.value.tenants == [a, b]
    assert a in str(info.value)
    assert b in str(info.value)
    with backend.engine.connect() as conn:
        assert storage.read_study(defn.name, conn=conn, tenant=b).tenant == b
    with pytest.raises(storage.StudyNotFoundError):
        storage.get_study(backend, defn.name, tenant="default")
    # A state change names its tenant and returns that tenant's record.
    paused = storage.change_state(backend, defn.name, "pause", tenant=b)
    assert (paused.tenant, paused.state) == (b, "paused")
    assert storage.get_study(backend, defn.name, tenant=a).state == "running"


def test_other_tenant_study_is_claimed_and_finished_through_its_optuna_name(
    backend: Backend,
) -> None:
    # claim_trial used to find our record by Optuna's study_name, which is
    # "<tenant>/<name>" outside the default tenant.
    defn = definition()
    record = storage.create_study(backend, defn, tenant=_tenant())
    study = storage.load_optuna_study(backend, record)
    trial = storage.claim_trial(backend, study, worker="host:1", device="cpu")
    assert trial is not None
    sample_config(trial, defn)
    trial.report(0.5, 0)
    storage.finish_trial(
        backend, study, trial, state=optuna.trial.TrialState.COMPLETE, value=0.5, user_attrs={}
    )
    with backend.engine.connect() as conn:
        best = storage.best_trial(conn, record)
    assert best is not None
    assert best.number == trial.number


def test_default_tenant_name_taken_in_optuna_by_an_old_study_of_another_tenant(
    backend: Backend,
) -> None:
    # Before names were per tenant, every Optuna study had the bare name.
    defn = definition()
    optuna.create_study(storage=backend.optuna_storage, study_name=defn.name)
    record = storage.create_study(backend, defn)
    assert record.optuna_name == f"default/{defn.name}"
    assert storage.load_optuna_study(backend, record)._study_id == record.study_id
