"""Study summary, best trial, best schedules and state counts against brute force."""

from __future__ import annotations

import math

import pytest
from optuna.trial import FrozenTrial, TrialState

from lrsearch import storage
from lrsearch.storage import Backend, TrialRow
from tests.storage_tests.helpers import (
    STATES,
    Played,
    Step,
    all_trials,
    brute_schedules,
    brute_summary,
    definition,
    play,
)


def _same_trial(row: TrialRow | None, frozen: FrozenTrial | None) -> None:
    if frozen is None:
        assert row is None
        return
    assert row is not None
    assert (row.number, row.state, row.value) == (frozen.number, "COMPLETE", frozen.value)
    assert row.params == frozen.params
    assert row.schedule == frozen.params["schedule"]
    assert row.learning_rate == frozen.params["learning_rate"]
    assert row.epochs_run == len(frozen.intermediate_values)
    assert row.worker == "host:1"
    assert row.device == "cpu"


@pytest.mark.parametrize("study", ["main_study", "min_study"])
def test_summary_matches_brute_force(
    backend: Backend, study: str, request: pytest.FixtureRequest
) -> None:
    played: Played = request.getfixturevalue(study)
    with backend.engine.connect() as conn:
        summary = storage.study_summary(conn, played.record)
    expected = brute_summary(played)
    assert summary.counts == expected["counts"]
    assert summary.finished == expected["finished"]
    assert summary.epochs_spent == expected["epochs_spent"]
    assert summary.epochs_saved == expected["epochs_saved"]
    assert summary.done == expected["done"]
    _same_trial(summary.best, expected["best"])


def test_main_study_has_every_case(main_study: Played) -> None:
    summary = brute_summary(main_study)
    assert all(summary["counts"][s] > 0 for s in STATES), summary["counts"]
    assert not summary["done"]
    # The infinite COMPLETE value would win naively; the tie at 0.95 goes to the lowest number.
    best = summary["best"]
    assert best is not None
    assert best.value == 0.95
    assert best.number == main_study.numbers[7]


def test_min_study_best_is_lowest_finite(min_study: Played) -> None:
    summary = brute_summary(min_study)
    assert summary["done"]
    assert summary["best"].value == 0.20
    assert summary["best"].number == min_study.numbers[1]


@pytest.mark.parametrize("study", ["main_study", "min_study"])
def test_best_trial(backend: Backend, study: str, request: pytest.FixtureRequest) -> None:
    played: Played = request.getfixturevalue(study)
    with backend.engine.connect() as conn:
        best = storage.best_trial(conn, played.record)
    _same_trial(best, brute_summary(played)["best"])


@pytest.mark.parametrize("study", ["main_study", "min_study"])
def test_best_per_schedule_matches_brute_force(
    backend: Backend, study: str, request: pytest.FixtureRequest
) -> None:
    played: Played = request.getfixturevalue(study)
    with backend.engine.connect() as conn:
        stats = storage.best_per_schedule(conn, played.record)
    expected = brute_schedules(played)
    assert [s.schedule for s in stats] == [e["schedule"] for e in expected]
    for got, exp in zip(stats, expected, strict=True):
        assert (got.n_complete, got.n_pruned, got.n_failed) == (
            exp["n_complete"],
            exp["n_pruned"],
            exp["n_failed"],
        ), got.schedule
        if exp["median_value"] is None:
            assert got.median_value is None
        else:
            assert got.median_value == pytest.approx(exp["median_value"], rel=1e-12)
        _same_trial(got.best, exp["best"])


def test_best_per_schedule_order_and_empty_schedules(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        stats = storage.best_per_schedule(conn, main_study.record)
    order = [s.schedule for s in stats]
    # step and exponential tie at 0.95: step's trial has the lower number.
    assert order[:3] == ["step", "exponential", "cosine"]
    # No complete trial: last, in definition order (plateau has no trial at all).
    assert order[3:] == ["plateau", "cyclic"]
    plateau, cyclic = stats[3], stats[4]
    assert (plateau.best, plateau.n_complete, plateau.median_value) == (None, 0, None)
    assert cyclic.best is None
    assert cyclic.n_pruned >= 1
    assert cyclic.n_failed >= 1
    assert cyclic.median_value is not None


def test_counts_of_schedules_add_up_to_finished(backend: Backend, main_study: Played) -> None:
    with backend.engine.connect() as conn:
        stats = storage.best_per_schedule(conn, main_study.record)
        summary = storage.study_summary(conn, main_study.record)
    assert sum(s.n_complete + s.n_pruned + s.n_failed for s in stats) == summary.finished


@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_trials_per_schedule(backend: Backend, main_study: Played, k: int) -> None:
    with backend.engine.connect() as conn:
        top = storage.top_trials_per_schedule(conn, main_study.record, k=k)
    expected = {e["schedule"]: e["top"][:k] for e in brute_schedules(main_study)}
    assert list(top) == list(main_study.record.definition.search_space.schedules)
    for sched, rows in top.items():
        assert [r.number for r in rows] == [t.number for t in expected[sched]], sched
        assert all(r.state == "COMPLETE" and r.value is not None for r in rows)


def test_trial_counts_by_state(backend: Backend, main_study: Played, min_study: Played) -> None:
    with backend.engine.connect() as conn:
        counts = storage.trial_counts_by_state(conn)
    assert set(counts) == set(STATES)
    ours = {s: 0 for s in STATES}
    for played in (main_study, min_study):
        for t in all_trials(played):
            ours[t.state.name] += 1
    if backend.dialect == "sqlite":
        # The SQLite file is this session's own, but other tests add studies to it:
        # count the trials of every study in it.
        every = {s: 0 for s in STATES}
        optuna_storage = backend.optuna_storage
        for study in optuna_storage.get_all_studies():
            for t in optuna_storage.get_all_trials(study._study_id, deepcopy=False):
                every[t.state.name] += 1
        assert counts == every
    else:
        # The PostgreSQL database is shared: at least our own trials.
        assert all(counts[s] >= ours[s] for s in STATES)


def test_done_once_the_budget_is_finished(backend: Backend) -> None:
    steps = [
        Step("step", "COMPLETE", 0.5, (0.5,)),
        Step("cosine", "PRUNED", None, (0.4, 0.3)),
        Step("cosine", "GIVE_BACK", None, (0.2,)),  # retried
        Step(None, "FAIL", None, (0.1,)),  # the retry fails for good
    ]
    played = play(
        backend,
        definition(budget={"n_trials": 3, "max_epochs": 4, "max_retries": 1}),
        steps,
    )
    with backend.engine.connect() as conn:
        summary = storage.study_summary(conn, played.record)
    assert summary.counts == {"RUNNING": 0, "WAITING": 0, "COMPLETE": 1, "PRUNED": 1, "FAIL": 2}
    assert summary.finished == 3
    assert summary.done
    assert summary.epochs_spent == 1 + 2 + 1 + 1
    assert summary.epochs_saved == 4 - 2


def test_empty_study(backend: Backend) -> None:
    record = storage.create_study(backend, definition())
    with backend.engine.connect() as conn:
        summary = storage.study_summary(conn, record)
        stats = storage.best_per_schedule(conn, record)
        page, cursor = storage.list_trials(conn, record)
    assert summary.counts == {s: 0 for s in STATES}
    assert (summary.finished, summary.best, summary.done) == (0, None, False)
    assert (summary.epochs_spent, summary.epochs_saved) == (0, 0)
    assert [s.schedule for s in stats] == list(record.definition.search_space.schedules)
    assert all(s.best is None and s.median_value is None for s in stats)
    assert (page, cursor) == ([], None)


def test_only_infinite_values_have_no_best(backend: Backend) -> None:
    played = play(
        backend,
        definition(budget={"n_trials": 2, "max_epochs": 3}),
        [
            Step("step", "COMPLETE", math.inf, (0.5,)),
            Step("cosine", "COMPLETE", -math.inf, (0.4,)),
        ],
    )
    assert all(t.state == TrialState.COMPLETE for t in all_trials(played))
    with backend.engine.connect() as conn:
        assert storage.best_trial(conn, played.record) is None
        stats = storage.best_per_schedule(conn, played.record)
    assert all(s.best is None and s.median_value is None for s in stats)
    assert {s.schedule: s.n_complete for s in stats}["step"] == 1
