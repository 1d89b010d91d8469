"""One trial in full, and the learning curves of several trials in a few queries."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from lrsearch import storage
from lrsearch.storage import Backend, TrialNotFoundError
from tests.storage_tests.helpers import Played, Step, all_trials, budget_of, definition, play


def _same_curve(got: dict[int, float], trial: FrozenTrial) -> None:
    assert list(got) == sorted(trial.intermediate_values)
    for step, value in trial.intermediate_values.items():
        if math.isnan(value):
            assert math.isnan(got[step])
        else:
            assert got[step] == value


def _trial(played: Played, state: TrialState) -> FrozenTrial:
    return next(t for t in all_trials(played) if t.state == state and t.intermediate_values)


def test_detail_of_a_complete_trial(backend: Backend, main_study: Played) -> None:
    trial = _trial(main_study, TrialState.COMPLETE)
    detail = storage.trial_detail(backend, main_study.record, trial.number)
    assert detail.row.number == trial.number
    assert detail.row.state == "COMPLETE"
    assert detail.row.params == trial.params
    _same_curve(detail.intermediate_values, trial)
    assert detail.lr_curve == trial.user_attrs["lr_curve"]
    assert len(detail.lr_curve) == len(trial.intermediate_values)
    assert detail.metrics == trial.user_attrs["metrics"]
    assert detail.user_attrs["worker"] == "host:1"
    assert detail.datetime_start is not None
    assert detail.datetime_complete is not None
    start = datetime.datetime.fromisoformat(detail.datetime_start)
    complete = datetime.datetime.fromisoformat(detail.datetime_complete)
    assert start.tzinfo is not None
    assert start <= complete


def test_detail_of_a_diverged_failure(backend: Backend, main_study: Played) -> None:
    trial = next(
        t
        for t in all_trials(main_study)
        if t.state == TrialState.FAIL and any(map(math.isnan, t.intermediate_values.values()))
    )
    detail = storage.trial_detail(backend, main_study.record, trial.number)
    assert detail.row.state == "FAIL"
    assert detail.row.error == "diverged"
    assert detail.row.value is None
    _same_curve(detail.intermediate_values, trial)


def test_detail_of_running_and_waiting_trials(backend: Backend) -> None:
    # A study of its own, read at once: a RUNNING trial of the long-lived session
    # fixture has no heartbeat, and any stale sweep on the shared PostgreSQL
    # database (a served app's, another test's) may fail it meanwhile.
    steps = [
        Step("step", "COMPLETE", 0.5, (0.4, 0.5)),
        Step("cosine", "RUNNING", None, (0.4, 0.45)),
        Step("step", "GIVE_BACK", None, (0.3,)),  # its retry stays WAITING
    ]
    played = play(
        backend, definition(budget={"n_trials": budget_of(steps), "max_epochs": 5}), steps
    )
    running = _trial(played, TrialState.RUNNING)
    detail = storage.trial_detail(backend, played.record, running.number)
    assert detail.row.state == "RUNNING"
    assert detail.row.epochs_run == len(running.intermediate_values)
    assert detail.row.worker == "host:1"
    assert detail.row.params == running.params
    assert detail.datetime_complete is None
    _same_curve(detail.intermediate_values, running)
    waiting = next(t for t in all_trials(played) if t.state == TrialState.WAITING)
    detail = storage.trial_detail(backend, played.record, waiting.number)
    assert detail.row.state == "WAITING"
    assert detail.row.schedule == waiting.system_attrs["fixed_params"]["schedule"]
    assert (detail.intermediate_values, detail.lr_curve, detail.metrics) == ({}, [], [])


def test_unknown_trial(backend: Backend, main_study: Played, min_study: Played) -> None:
    with pytest.raises(TrialNotFoundError, match="no trial 100000"):
        storage.trial_detail(backend, main_study.record, 100_000)
    # A number that exists in the other study but not in this one.
    last = max(t.number for t in all_trials(main_study))
    with pytest.raises(TrialNotFoundError):
        storage.trial_detail(backend, min_study.record, last)


def test_curves_of_several_trials(backend: Backend, main_study: Played) -> None:
    trials = {t.number: t for t in all_trials(main_study)}
    numbers = [*sorted(trials)[::2], 100_000, -1]
    with backend.engine.connect() as conn:
        got = storage.curves(conn, main_study.record, numbers)
    # Called with the backend instead of a connection: the same answer.
    assert _comparable(storage.curves(backend, main_study.record, numbers)) == _comparable(got)
    assert sorted(got) == sorted(n for n in numbers if n in trials)
    for number, entry in got.items():
        trial = trials[number]
        assert entry["state"] == trial.state.name
        _same_curve(entry["intermediate_values"], trial)
        assert entry["lr_curve"] == trial.user_attrs.get("lr_curve", [])


def _comparable(curves: dict[int, dict[str, Any]]) -> str:
    # NaN != NaN, so compare the repr (which spells NaN "nan").
    return repr(sorted(curves.items()))


def test_curves_use_a_constant_number_of_queries(backend: Backend, main_study: Played) -> None:
    numbers = [t.number for t in all_trials(main_study)]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    with backend.engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", count)
        storage.curves(conn, main_study.record, numbers[:2])
        few = len(statements)
        statements.clear()
        storage.curves(conn, main_study.record, numbers)
        many = len(statements)
    assert few == many == 3


def test_curves_bounds(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        assert storage.curves(conn, main_study.record, []) == {}
        with pytest.raises(ValueError, match="at most 200"):
            storage.curves(conn, main_study.record, range(201))
        assert len(storage.curves(conn, main_study.record, [0] * 500)) == 1
