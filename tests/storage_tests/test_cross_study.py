"""Best schedules across a task's studies: against a brute force over every study's trials.

Studies are built through the real worker path (tests.storage_tests.helpers.play)
on SQLite and PostgreSQL. The PostgreSQL database is shared and never wiped, so
each test uses its own task name and tenants.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import StudyDefinition, sample_config
from lrsearch.storage import Backend
from tests.storage_tests.helpers import Played, Step, all_trials, definition, finite

SCHEDULES = ("step", "exponential", "cosine", "cyclic")


def _steps(seed: int, n: int = 10) -> list[Step]:
    rng = random.Random(seed)
    steps = []
    for _ in range(n):
        schedule = rng.choice(SCHEDULES)
        outcome = rng.choice(["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL"])
        value = round(rng.uniform(0.1, 0.9), 2)  # 2 decimals: ties across studies happen
        steps.append(Step(schedule, outcome, value, (value / 2, value)))
    return steps


def _study(backend: Backend, task: str, tenant: str, seed: int, **over: Any) -> Played:
    defn = definition(
        task=task,
        budget={"n_trials": 20, "max_epochs": 5, "max_retries": 0},
        search_space={"schedules": list(SCHEDULES)},
        **over,
    )
    return play_in(backend, defn, tenant, _steps(seed))


def play_in(backend: Backend, defn: StudyDefinition, tenant: str, steps: list[Step]) -> Played:
    """Like helpers.play (COMPLETE, PRUNED and FAIL steps only), for a study of ``tenant``."""
    record = storage.create_study(backend, defn, tenant=tenant)
    study = storage.load_optuna_study(backend, record)
    played = Played(record=record, study=study)
    for s in steps:
        storage.enqueue_fixed(backend, study, record, {"schedule": s.schedule})
        trial = storage.claim_trial(backend, study, worker="host:1", device="cpu")
        assert trial is not None
        sample_config(trial, defn)
        for epoch, v in enumerate(s.curve):
            trial.report(v, epoch)
        state = TrialState[s.outcome]
        storage.finish_trial(
            backend,
            study,
            trial,
            state=state,
            value=s.value if state == TrialState.COMPLETE else None,
            user_attrs={"error": "diverged"} if state == TrialState.FAIL else {},
        )
    return played


def _naive(played: list[Played], direction: str, k: int) -> dict[str, list[tuple[str, int]]]:
    """Top ``k`` (study, number) per schedule over every trial of every study."""
    pool: dict[str, list[tuple[float, str, int]]] = {}
    sign = -1.0 if direction == "maximize" else 1.0
    for p in played:
        if p.record.direction != direction:
            continue
        for t in all_trials(p):
            value = finite(t.value) if t.state == TrialState.COMPLETE else None
            if value is None:
                continue
            pool.setdefault(t.params["schedule"], []).append(
                (sign * value, p.record.name, t.number)
            )
    return {s: [(name, n) for _, name, n in sorted(rows)[:k]] for s, rows in pool.items()}


def _got(
    groups: list[storage.CrossStudySchedule], direction: str
) -> dict[str, list[tuple[str, int]]]:
    return {
        g.schedule: [(t.study, t.row.number) for t in g.trials]
        for g in groups
        if g.direction == direction
    }


@pytest.mark.parametrize("k", [1, 3])
def test_matches_a_brute_force_over_every_study(backend: Backend, k: int) -> None:
    task, tenant = f"xs-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    played = [_study(backend, task, tenant, seed) for seed in range(4)]
    with backend.engine.connect() as conn:
        groups = storage.best_across_studies(conn, tenant=tenant, task=task, k=k)
    expected = _naive(played, "maximize", k)
    assert expected, "the fixture must produce complete trials"
    assert _got(groups, "maximize") == expected
    # Every returned value is the study's own stored value, best first.
    for g in groups:
        values = [t.row.value for t in g.trials if t.row.value is not None]
        assert len(values) == len(g.trials)
        assert values == sorted(values, reverse=True)


def test_directions_are_ranked_apart(backend: Backend) -> None:
    task, tenant = f"xs-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    played = [
        _study(backend, task, tenant, 1),
        _study(backend, task, tenant, 2, objective={"metric": "val_loss"}),
        _study(backend, task, tenant, 3, objective={"metric": "val_loss"}),
    ]
    with backend.engine.connect() as conn:
        groups = storage.best_across_studies(conn, tenant=tenant, task=task)
    assert {g.direction for g in groups} == {"maximize", "minimize"}
    assert _got(groups, "minimize") == _naive(played, "minimize", 3)
    assert _got(groups, "maximize") == _naive(played, "maximize", 3)
    # maximize groups come first; within a direction, the best schedule first.
    directions = [g.direction for g in groups]
    assert directions == sorted(directions)
    lows = [g.trials[0].row.value or 0.0 for g in groups if g.direction == "minimize"]
    assert lows == sorted(lows)
    assert all(
        t.metric == "val_loss" for g in groups if g.direction == "minimize" for t in g.trials
    )


def test_only_the_callers_tenant_and_task(backend: Backend) -> None:
    task = f"xs-{uuid.uuid4().hex[:8]}"
    mine, theirs = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    own = _study(backend, task, mine, 5)
    other = _study(backend, task, theirs, 6)
    _study(backend, f"{task}-other", mine, 7)
    with backend.engine.connect() as conn:
        groups = storage.best_across_studies(conn, tenant=mine, task=task)
        nothing = storage.best_across_studies(conn, tenant="nobody", task=task)
    studies = {t.study for g in groups for t in g.trials}
    assert studies == {own.record.name}
    assert other.record.name not in studies
    assert nothing == []


def test_settings_are_absolute(backend: Backend) -> None:
    task, tenant = f"xs-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    defn = definition(
        task=task,
        budget={"n_trials": 5, "max_epochs": 5, "max_retries": 0},
        search_space={"schedules": ["cyclic", "cosine"]},
    )
    play_in(
        backend,
        defn,
        tenant,
        [Step("cyclic", "COMPLETE", 0.8, (0.8,)), Step("cosine", "COMPLETE", 0.7, (0.7,))],
    )
    with backend.engine.connect() as conn:
        groups = {
            g.schedule: g for g in storage.best_across_studies(conn, tenant=tenant, task=task)
        }
    cyc = groups["cyclic"].trials[0]
    lr, params = cyc.row.learning_rate, cyc.row.params
    assert cyc.settings is not None
    assert lr is not None
    assert cyc.settings.scheduler == "CyclicLR"
    assert cyc.settings.args["max_lr"] == pytest.approx(params["cyclic.max_lr"] * lr)
    assert cyc.settings.args["base_lr"] == pytest.approx(lr)
    cos = groups["cosine"].trials[0]
    assert cos.settings is not None
    assert cos.row.learning_rate is not None
    assert cos.settings.args["eta_min"] == pytest.approx(
        cos.row.params["cosine.eta_min"] * cos.row.learning_rate
    )
