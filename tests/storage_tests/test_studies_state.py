"""The ``failed`` state, its reason, and stored definitions that no longer validate."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from lrsearch import storage
from lrsearch.storage import Backend
from lrsearch.storage._tables import studies
from lrsearch.workers.loop import WorkerOptions, run_worker
from tests.storage_tests.helpers import definition
from tests.storage_tests.migration_helpers import fresh_database


def _fail(backend: Backend, record: storage.StudyRecord, reason: str) -> bool:
    with backend.engine.begin() as conn:
        return storage.mark_study_failed(conn, record.study_id, reason)


def test_failed_study_keeps_its_reason_until_resumed(backend: Backend) -> None:
    record = storage.create_study(backend, definition())
    assert record.state == "running"
    assert record.state_reason is None
    assert _fail(backend, record, "5 consecutive trials failed: CUDA error")
    failed = storage.get_study(backend, record.name)
    assert failed.state == "failed"
    assert failed.state_reason == "5 consecutive trials failed: CUDA error"
    assert failed.updated_at >= record.updated_at
    # The first verdict stays.
    assert not _fail(backend, record, "another reason")
    assert storage.get_study(backend, record.name).state_reason == failed.state_reason
    with pytest.raises(storage.InvalidStateError):
        storage.change_state(backend, record.name, "pause")
    resumed = storage.change_state(backend, record.name, "resume")
    assert (resumed.state, resumed.state_reason) == ("running", None)


def test_failed_study_can_be_cancelled_and_cancelled_is_never_marked_failed(
    backend: Backend,
) -> None:
    record = storage.create_study(backend, definition())
    _fail(backend, record, "boom")
    assert storage.change_state(backend, record.name, "cancel").state == "cancelled"
    assert not _fail(backend, record, "later failure")
    assert storage.get_study(backend, record.name).state == "cancelled"


def test_paused_study_can_be_marked_failed(backend: Backend) -> None:
    record = storage.create_study(backend, definition())
    storage.change_state(backend, record.name, "pause")
    assert _fail(backend, record, "trials kept failing")
    assert storage.get_study(backend, record.name).state == "failed"


def _break_definition(backend: Backend, study_id: int, **values: object) -> None:
    with backend.engine.begin() as conn:
        conn.execute(studies.update().where(studies.c.study_id == study_id).values(**values))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("invalid", "stored definition unusable"),
        ("newer", "newer than this lrsearch"),
        ("not json", "stored definition unusable"),
    ],
)
def test_unreadable_definition_is_listed_with_its_problem(
    backend: Backend, change: str, problem: str
) -> None:
    record = storage.create_study(backend, definition())
    raw = json.loads(record.definition_raw)
    if change == "invalid":
        raw["sampler"]["type"] = "no-such-sampler"
        _break_definition(backend, record.study_id, definition=json.dumps(raw))
    elif change == "newer":
        _break_definition(backend, record.study_id, definition_version=2)
    else:
        _break_definition(backend, record.study_id, definition="{not json")
    listed = {r.study_id: r for r in storage.list_studies(backend)}
    broken = listed[record.study_id]
    assert broken.definition_problem is not None
    assert problem in broken.definition_problem
    # The stand-in keeps what the row's columns say.
    assert broken.definition.name == record.name
    assert broken.definition.direction == record.direction
    assert broken.definition.budget.n_trials == record.n_trials
    assert storage.get_study(backend, record.name).definition_problem == broken.definition_problem
    stored = json.loads(record.definition_raw)
    # Version 1 (or none, as before versions were stored) is today's format.
    assert storage.upgrade_definition(stored, 1) == stored
    assert storage.upgrade_definition(stored, None) == stored


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def test_worker_skips_a_study_it_cannot_read_and_runs_the_others(
    fresh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = storage.open_backend(fresh_url)
    try:
        broken = storage.create_study(backend, definition())
        good = storage.create_study(backend, definition(budget={"n_trials": 2, "max_epochs": 2}))
        _break_definition(backend, broken.study_id, definition_version=2)
    finally:
        backend.dispose()
    options = WorkerOptions(
        storage_url=fresh_url,
        device="cpu",
        idle_exit=1.0,
        poll_interval=0.1,
        install_signal_handlers=False,
    )
    with caplog.at_level(logging.WARNING, logger="lrsearch.workers.loop"):
        stats = run_worker(options)
    assert stats.trials == 2
    skipped = [r.getMessage() for r in caplog.records if "skipping study" in r.getMessage()]
    assert len(skipped) == 1
    assert broken.name in skipped[0]
    assert "newer than this lrsearch" in skipped[0]
    rdb = optuna.storages.RDBStorage(fresh_url)
    try:
        assert optuna.load_study(study_name=broken.optuna_name, storage=rdb).trials == []
        assert len(optuna.load_study(study_name=good.optuna_name, storage=rdb).trials) == 2
    finally:
        rdb.engine.dispose()
