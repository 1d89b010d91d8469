"""The study list carries each study's progress, read for the whole page at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from lrsearch import storage
from tests.service_tests.conftest import Api
from tests.service_tests.helpers import DriveTrials

LIST_FIELDS = ("counts", "finished", "state", "control_state", "state_reason")


def test_listing_counts_and_best_equal_the_per_study_endpoint(
    api: Api, drive: Callable[..., DriveTrials]
) -> None:
    empty = api.create_study()["name"]
    mixed = api.create_study(budget={"n_trials": 6, "max_epochs": 3})["name"]
    drive(mixed, outcomes=["COMPLETE", "PRUNED", "FAIL", "COMPLETE", "COMPLETE"])
    done = api.create_study(budget={"n_trials": 2, "max_epochs": 2})["name"]
    drive(done, outcomes=["COMPLETE", "COMPLETE"])
    minimize = api.create_study(
        objective={"metric": "val_loss"}, budget={"n_trials": 4, "max_epochs": 2}
    )["name"]
    drive(minimize, outcomes=["COMPLETE", "COMPLETE", "COMPLETE"])
    failed = api.create_study()["name"]
    drive(failed, outcomes=["FAIL"])
    with api.backend.engine.begin() as conn:
        assert storage.mark_study_failed(
            conn, api.record(failed).study_id, "3 trials in a row failed with TaskDataError"
        )

    listed = {s["name"]: s for s in api.get("/studies", params={"limit": 10}).json()["items"]}
    for name in (empty, mixed, done, minimize, failed):
        detail = api.get(f"/studies/{name}").json()
        item = listed[name]
        for field in LIST_FIELDS:
            assert item[field] == detail[field], (name, field)
        best = detail["best"]
        assert item["best_value"] == (best["value"] if best is not None else None), name

    assert listed[empty]["best_value"] is None
    assert listed[mixed]["counts"] == {
        "RUNNING": 0, "WAITING": 0, "COMPLETE": 3, "PRUNED": 1, "FAIL": 1
    }  # fmt: skip
    assert listed[done]["state"] == "finished"
    assert listed[failed]["state"] == "failed"
    assert listed[failed]["state_reason"] == "3 trials in a row failed with TaskDataError"


@pytest.fixture
def statements(api: Api) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        # Not the app's periodic stale-trial sweep (its own thread, over every study).
        if threading.current_thread().name != "stale-sweeper":
            seen.append(str(args[2]))

    sa.event.listen(api.backend.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(api.backend.engine, "before_cursor_execute", record)


def test_a_page_costs_the_same_queries_however_many_studies_it_holds(
    api: Api, drive: Callable[..., DriveTrials], statements: list[str]
) -> None:
    for _ in range(2):
        drive(api.create_study()["name"], outcomes=["COMPLETE"])
    statements.clear()
    assert len(api.get("/studies").json()["items"]) == 2
    two = len(statements)
    for _ in range(4):
        drive(api.create_study()["name"], outcomes=["COMPLETE"])
    statements.clear()
    assert len(api.get("/studies").json()["items"]) == 6
    assert len(statements) == two
