"""The dashboard's bounded storage queries, on SQLite and PostgreSQL, against brute force."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.storage._dashboard_queries import (
    importance_sample,
    recent_trials,
    scatter_sample,
    trials_by_number,
)
from tests.storage_tests.helpers import Played, Step, all_trials, definition, play

SCHEDULES = ("step", "exponential", "cosine", "plateau", "cyclic")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def played(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[storage.Backend, Played]]:
    """An 18-trial study: complete, pruned and failed trials of every schedule."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('queries') / 'q.db'}"
    else:
        from tests.conftest import postgres_url_or_skip

        url = postgres_url_or_skip()
    backend = storage.open_backend(url)
    outcomes = ("COMPLETE", "PRUNED", "COMPLETE", "FAIL", "COMPLETE", "PRUNED")
    steps = [
        Step(
            SCHEDULES[i % len(SCHEDULES)],
            outcomes[i % len(outcomes)],
            value=0.5 + 0.01 * i,
            curve=(0.3, 0.4, 0.5 + 0.01 * i)[: 1 + i % 3],
        )
        for i in range(18)
    ]
    try:
        yield backend, play(backend, definition(budget={"n_trials": 18, "max_epochs": 3}), steps)
    finally:
        backend.dispose()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def test_recent_trials_are_the_newest_in_the_states(
    played: tuple[storage.Backend, Played],
) -> None:
    backend, p = played
    pruned = sorted((t.number for t in all_trials(p) if t.state == TrialState.PRUNED), reverse=True)
    with backend.engine.connect() as conn:
        rows = recent_trials(conn, p.record, states=("PRUNED",), limit=4)
        assert recent_trials(conn, p.record, states=("PRUNED",), limit=0) == []
    assert [r.number for r in rows] == pruned[:4]
    assert {r.state for r in rows} == {"PRUNED"}


def test_trials_by_number_leaves_unknown_numbers_out(
    played: tuple[storage.Backend, Played],
) -> None:
    backend, p = played
    with backend.engine.connect() as conn:
        rows = trials_by_number(conn, p.record, [3, 0, 999, 3])
    assert sorted(rows) == [0, 3]
    trials = {t.number: t for t in all_trials(p)}
    assert rows[0].schedule == trials[0].params["schedule"]


def test_scatter_sample_is_every_finished_trial_or_an_even_sample(
    played: tuple[storage.Backend, Played],
) -> None:
    backend, p = played
    finished = {
        t.number: t
        for t in all_trials(p)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and _finite(t.value)
    }
    with backend.engine.connect() as conn:
        full = scatter_sample(conn, p.record, limit=1000)
        small = scatter_sample(conn, p.record, limit=7)
        with pytest.raises(ValueError, match="limit"):
            scatter_sample(conn, p.record, limit=0)
    assert full.total == small.total == len(finished)
    assert full.numbers == sorted(finished)
    for number, lr, value, schedule, state in zip(
        full.numbers, full.learning_rates, full.values, full.schedules, full.states, strict=True
    ):
        trial = finished[number]
        assert (lr, value) == (trial.params["learning_rate"], trial.value)
        assert (schedule, state) == (trial.params["schedule"], trial.state.name)
    stride = -(-len(finished) // 7)
    assert 0 < len(small.numbers) <= 7
    assert small.numbers == [n for n in sorted(finished) if n % stride == 0][:7]


def test_importance_sample_rebuilds_the_complete_trials(
    played: tuple[storage.Backend, Played],
) -> None:
    backend, p = played
    complete = [t for t in all_trials(p) if t.state == TrialState.COMPLETE and _finite(t.value)]
    with backend.engine.connect() as conn:
        sample = importance_sample(conn, p.record, limit=1000)
        few = importance_sample(conn, p.record, limit=3)
    assert [(t.params, t.distributions, t.value) for t in sample] == [
        (t.params, t.distributions, t.value) for t in sorted(complete, key=lambda t: t.number)
    ]
    assert all(t.state == TrialState.COMPLETE for t in sample)
    assert 0 < len(few) <= 3
