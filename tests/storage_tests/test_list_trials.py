"""Keyset pagination of trials: every trial once, in order, for both orders and filters."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence

import pytest
from optuna.trial import FrozenTrial

from lrsearch import storage
from lrsearch.storage import Backend, InvalidCursorError, StorageError, TrialRow
from tests.storage_tests.helpers import STATES, Played, all_trials, finite, sort_best


def _walk(
    backend: Backend,
    played: Played,
    *,
    order: storage.TrialOrder,
    states: Sequence[str] | None = None,
    limit: int,
) -> list[TrialRow]:
    seen: list[TrialRow] = []
    cursor: str | None = None
    with backend.engine.connect() as conn:
        for _ in range(1000):
            page, cursor = storage.list_trials(
                conn, played.record, states=states, order=order, cursor=cursor, limit=limit
            )
            assert len(page) <= limit
            seen += page
            if cursor is None:
                return seen
            assert len(page) == limit
    raise AssertionError("pagination did not end")


def _expected(played: Played, order: str, states: Sequence[str] | None) -> list[FrozenTrial]:
    trials = [t for t in all_trials(played) if states is None or t.state.name in states]
    if order == "number":
        return sorted(trials, key=lambda t: t.number)
    return sort_best(trials, played.record.direction)


@pytest.mark.parametrize("order", ["number", "value"])
@pytest.mark.parametrize(
    "states",
    [None, ["COMPLETE"], ["PRUNED", "FAIL"], ["RUNNING", "WAITING"], ["WAITING", "COMPLETE"]],
    ids=["all", "complete", "pruned-fail", "active", "waiting-complete"],
)
@pytest.mark.parametrize("limit", [1, 7, 50])
def test_pages_visit_every_trial_once_in_order(
    backend: Backend,
    main_study: Played,
    order: storage.TrialOrder,
    states: list[str] | None,
    limit: int,
) -> None:
    seen = _walk(backend, main_study, order=order, states=states, limit=limit)
    expected = _expected(main_study, order, states)
    assert [r.number for r in seen] == [t.number for t in expected]
    assert len({r.number for r in seen}) == len(seen)
    for row, trial in zip(seen, expected, strict=True):
        assert row.state == trial.state.name
        value = finite(trial.value) if trial.state.is_finished() and trial.values else None
        assert row.value == value


@pytest.mark.parametrize("order", ["number", "value"])
def test_minimize_orders_lowest_first(
    backend: Backend, min_study: Played, order: storage.TrialOrder
) -> None:
    seen = _walk(backend, min_study, order=order, limit=3)
    assert [r.number for r in seen] == [t.number for t in _expected(min_study, order, None)]
    if order == "value":
        values = [r.value for r in seen if r.value is not None]
        assert values == sorted(values)
        assert seen[-1].value is None


def test_rows_carry_trial_fields(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        rows, _ = storage.list_trials(conn, main_study.record, limit=1000)
    trials = {t.number: t for t in all_trials(main_study)}
    assert len(rows) == len(trials)
    for row in rows:
        trial = trials[row.number]
        if row.state == "WAITING":
            # Enqueued: only the fixed parameters are known before a worker claims it.
            assert row.schedule == trial.system_attrs["fixed_params"]["schedule"]
            assert row.worker is None
            assert row.epochs_run == 0
            continue
        assert row.params == trial.params
        assert row.schedule == trial.params["schedule"]
        assert row.batch_size == trial.params["batch_size"]
        assert row.weight_init == trial.params["weight_init"]
        assert row.dropout == trial.params["dropout"]
        assert row.epochs_run == len(trial.intermediate_values)
        assert (row.worker, row.device) == ("host:1", "cpu")
        assert row.duration_s is not None
        assert row.duration_s >= 0
        assert row.retry_of == trial.user_attrs.get("retry_of")
        if row.state == "FAIL":
            assert row.error in ("diverged", "worker lost")


def test_waiting_retry_and_baseline(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        rows, cursor = storage.list_trials(conn, main_study.record, states=["WAITING"])
    assert cursor is None
    assert len(rows) == 2
    retry, baseline = rows
    assert retry.retry_of is not None
    assert retry.schedule == "step"
    assert retry.params["learning_rate"] > 0
    assert baseline.retry_of is None
    assert baseline.params == {"schedule": "plateau"}


def test_running_rows_show_progress(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        rows, _ = storage.list_trials(conn, main_study.record, states=["RUNNING"])
    assert [(r.schedule, r.epochs_run) for r in rows] == [("cosine", 2), ("exponential", 0)]
    assert all(r.worker == "host:1" and r.device == "cpu" for r in rows)
    assert all(r.value is None and r.duration_s is not None for r in rows)


def _cursor(payload: object) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
    return raw.decode()


def test_bad_cursors_raise_invalid_cursor(
    backend: Backend, main_study: Played, min_study: Played
) -> None:
    with backend.engine.connect() as conn:
        _, good_number = storage.list_trials(conn, main_study.record, limit=2)
        _, good_value = storage.list_trials(conn, main_study.record, order="value", limit=2)
        _, other_study = storage.list_trials(conn, min_study.record, limit=2)
        assert good_number
        assert good_value
        assert other_study
        sid = main_study.record.study_id
        bad: list[tuple[str, storage.TrialOrder]] = [
            ("not a cursor!", "number"),
            ("", "number"),
            ("é", "number"),
            (base64.urlsafe_b64encode(b"\xff\xfe").decode(), "number"),
            (_cursor([1, 2]), "number"),
            (_cursor({"s": sid, "o": "number", "k": ["3"]}), "number"),
            (_cursor({"s": sid, "o": "number", "k": [True]}), "number"),
            (_cursor({"s": sid, "o": "number", "k": [2**40]}), "number"),
            (_cursor({"s": sid, "o": "number", "k": []}), "number"),
            (_cursor({"s": sid, "o": "value", "k": [0, "x", 3]}), "value"),
            (_cursor({"s": sid, "o": "value", "k": [0, None, 3]}), "value"),
            (_cursor({"s": sid, "o": "value", "k": [2, 0.5, 3]}), "value"),
            (_cursor({"s": sid, "o": "value", "k": [0, 0.5]}), "value"),
            (_cursor({"s": sid, "o": "value", "k": [0, math.inf, 3]}), "value"),
            (_cursor({"s": sid, "o": "value", "k": [0, math.nan, 3]}), "value"),
            (good_value, "number"),  # another order's cursor
            (good_number, "value"),
            (other_study, "number"),  # another study's cursor
            (good_number[:-3], "number"),
        ]
        for cursor, order in bad:
            with pytest.raises(InvalidCursorError) as info:
                storage.list_trials(conn, main_study.record, order=order, cursor=cursor)
            assert isinstance(info.value, StorageError)
            assert isinstance(info.value, ValueError)


def test_bad_arguments(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        for kwargs in ({"limit": 0}, {"limit": 100_000}, {"states": ["DONE"]}, {"order": "x"}):
            with pytest.raises(ValueError, match=r"limit|state|order"):
                storage.list_trials(conn, main_study.record, **kwargs)
        assert storage.list_trials(conn, main_study.record, states=[]) == ([], None)


def test_every_state_is_reachable(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        for state in STATES:
            rows, _ = storage.list_trials(conn, main_study.record, states=[state], limit=1000)
            assert rows
            assert {r.state for r in rows} == {state}
