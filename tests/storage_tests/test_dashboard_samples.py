"""The dashboard's samples (history, params, scatter, importance) against brute force.

The samples look trial numbers up through an index instead of filtering
every row; here their answers are compared with the same definitions
computed in Python over every summary row, on SQLite and PostgreSQL, for
studies with gaps in the numbers (trials left running), FAIL and PRUNED
trials, retries, infinite values and, written into the table, NaN values
and missing or infinite learning rates; for many limits, both directions,
and with lookups split into many small chunks.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from lrsearch import storage
from lrsearch.storage import Backend, StudyRecord
from lrsearch.storage import _dashboard_queries as queries
from lrsearch.storage._aggregates import refresh_study
from lrsearch.storage._analysis import estimate_spent
from lrsearch.storage._tables import trial_results
from tests.storage_tests.helpers import Played, Step, budget_of, definition, play

LIMITS = (1, 2, 3, 5, 7, 11, 1000)


def _steps(seed: int, n: int, values: tuple[float, ...], trend: float) -> list[Step]:
    """Random outcomes with runs of ties, infinite values, failures, retries and gaps.

    Values improve by ``trend`` every 8 trials, so that there are several records.
    """
    rng = random.Random(seed)
    steps = []
    for i in range(n):
        values = tuple(v + trend * (i // 8) for v in values)
        sched = rng.choice(["step", "exponential", "cosine", "cyclic"])
        curve = tuple(round(rng.uniform(0.1, 0.9), 2) for _ in range(rng.randint(1, 4)))
        outcome = rng.choice(["COMPLETE"] * 4 + ["PRUNED", "PRUNED", "FAIL", "RUNNING"])
        if i % 9 == 4:
            outcome = "GIVE_BACK"
        if i % 9 == 5:
            steps.append(Step(None, "COMPLETE", round(rng.choice(values), 2), curve))  # the retry
            continue
        steps.append(Step(sched, outcome, round(rng.choice(values), 2), curve))
    return steps


MAX_VALUES = (0.2, 0.5, 0.5, 0.7, 0.7, 0.9, 0.9, 0.9, math.inf, -math.inf)
MIN_VALUES = (0.9, 0.6, 0.4, 0.4, 0.3, 0.3, 0.3, math.inf, -math.inf)


@dataclass(frozen=True)
class Study:
    backend: Backend
    record: StudyRecord
    rows: list[dict[str, Any]]  # every summary row, by number


def _doctor(backend: Backend, played: Played) -> None:
    """Values and learning rates that the trial path never writes, but a table may hold."""
    tr = trial_results.c
    sid = played.record.study_id
    with backend.engine.begin() as conn:
        rows = conn.execute(
            sa.select(tr.number, tr.state, tr.value).where(tr.study_id == sid).order_by(tr.number)
        ).all()
        complete = [n for n, s, _ in rows if s == "COMPLETE"]
        pruned = [n for n, s, _ in rows if s == "PRUNED"]
        first = next(v for _, s, v in rows if s == "COMPLETE" and v is not None)
        finite = [v for _, s, v in rows if s == "COMPLETE" and v is not None]
        best = max(finite) if played.record.direction == "maximize" else min(finite)
        edits = [
            (complete[0], {"value": first}),
            (complete[1], {"value": math.nan}),  # stored as NULL by SQLite
            (complete[2], {"value": first}),  # ties the best so far: a record
            (complete[-1], {"value": best}),  # ties the best: a record
            (complete[-2], {"value": math.nan}),
            (pruned[0], {"learning_rate": None}),
            (pruned[-1], {"learning_rate": math.inf}),
            (complete[3], {"learning_rate": math.nan}),
        ]
        for number, values in edits:
            conn.execute(
                trial_results.update().where(tr.study_id == sid, tr.number == number).values(values)
            )
        refresh_study(conn, sid)


@pytest.fixture(scope="module", params=["maximize", "minimize"])
def study(backend: Backend, request: pytest.FixtureRequest) -> Study:
    if request.param == "maximize":
        steps = _steps(11, 40, MAX_VALUES, 0.1)
        defn = definition(budget={"n_trials": budget_of(steps), "max_epochs": 4, "max_retries": 1})
    else:
        steps = _steps(12, 30, MIN_VALUES, -0.1)
        defn = definition(
            objective={"metric": "val_loss"},
            budget={"n_trials": budget_of(steps), "max_epochs": 4, "max_retries": 1},
        )
    played = play(backend, defn, steps)
    assert played.record.direction == request.param
    _doctor(backend, played)
    with backend.engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(trial_results)
                .where(trial_results.c.study_id == played.record.study_id)
                .order_by(trial_results.c.number)
            )
        ]
    numbers = [r["number"] for r in rows]
    assert numbers[-1] + 1 > len(numbers), "the study must have gaps in its numbers"
    return Study(backend, played.record, rows)


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _strided(rows: list[dict[str, Any]], limit: int) -> tuple[int, list[dict[str, Any]]]:
    stride = max(1, -(-len(rows) // limit))
    return len(rows), [r for r in rows if r["number"] % stride == 0][:limit]


@pytest.fixture(params=[64, 1], ids=["chunks", "tiny-chunks"])
def chunks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "_FIRST_CHUNK", request.param)
    if request.param == 1:
        monkeypatch.setattr(queries, "_MAX_CHUNK", 2)


@pytest.mark.usefixtures("chunks")
def test_history_matches_brute_force(study: Study) -> None:
    maximize = study.record.direction == "maximize"
    spent, running = {}, 0
    for r in study.rows:
        running += r["epochs_run"]
        spent[r["number"]] = running
    records, best = [], None
    for r in study.rows:
        v = r["value"]
        if r["state"] != "COMPLETE" or not _finite(v):
            continue
        if best is None or (v >= best if maximize else v <= best):
            best = v
            records.append(r["number"])
    valued = [r for r in study.rows if r["state"] != "FAIL" and _finite(r["value"])]
    assert len(records) >= 3
    with study.backend.engine.connect() as conn:
        for limit in LIMITS:
            h = storage.history(conn, study.record, limit=limit)
            total, sample = _strided(valued, limit)
            assert h.total == total
            assert h.numbers == [r["number"] for r in sample], limit
            assert h.values == [r["value"] for r in sample]
            assert h.states == [r["state"] for r in sample]
            assert h.record_numbers == records[:limit]
            by_number = {r["number"]: r for r in study.rows}
            assert h.record_values == [by_number[n]["value"] for n in records[:limit]]
            estimated = dict(
                zip(h.numbers + h.record_numbers, h.epochs + h.record_epochs, strict=True)
            )
            if limit > study.rows[-1]["number"]:  # every number fits: exact
                assert estimated == {n: spent[n] for n in estimated}
            else:  # estimated: never decreasing, within the study's epochs
                ordered = [estimated[n] for n in sorted(estimated)]
                assert ordered == sorted(ordered)
                assert ordered[0] >= 0
                assert ordered[-1] <= running


def test_epochs_spent_estimate() -> None:
    epochs = [3, 0, 2, 5, 1, 1, 4, 2, 2, 3, 1, 5]
    exact = [sum(epochs[: n + 1]) for n in range(len(epochs))]
    top, total = len(epochs) - 1, sum(epochs)
    every = dict(enumerate(epochs))
    assert estimate_spent(every, 1, top, total, list(range(12))) == dict(enumerate(exact))
    # Every trial ran 2 epochs: exact on the grid and at the top.
    got = estimate_spent({0: 2, 4: 2, 8: 2}, 4, 11, 24, [0, 4, 8, 11])
    assert got == {0: 2, 4: 10, 8: 18, 11: 24}
    # Off the grid and with a missing trial: interpolated, never decreasing,
    # the exact total at the top.
    got = estimate_spent({0: 3, 8: 2}, 4, 11, total, list(range(12)))
    assert list(got.values()) == sorted(got.values())
    assert got[11] == total
    # No sampled trial ran an epoch: the total spread over the numbers.
    assert estimate_spent({0: 0, 5: 0}, 5, 9, 10, [0, 4, 9]) == {0: 1, 4: 5, 9: 10}


@pytest.mark.usefixtures("chunks")
@pytest.mark.parametrize("schedule", [None, "cosine", "plateau"])
def test_param_sample_matches_brute_force(study: Study, schedule: str | None) -> None:
    complete = [
        r
        for r in study.rows
        if r["state"] == "COMPLETE"
        and _finite(r["value"])
        and (schedule is None or r["schedule"] == schedule)
    ]
    with study.backend.engine.connect() as conn:
        for limit in LIMITS:
            s = storage.param_sample(conn, study.record, schedule=schedule, limit=limit)
            total, sample = _strided(complete, limit)
            assert s.total == total
            assert s.numbers == [r["number"] for r in sample], limit
            assert s.values == [r["value"] for r in sample]
            assert s.schedules == [r["schedule"] for r in sample]
            for i, r in enumerate(sample):
                params = json.loads(r["params"])
                assert {k: col[i] for k, col in s.params.items() if k in params} == {
                    k: v for k, v in params.items() if not isinstance(v, float) or math.isfinite(v)
                }


@pytest.mark.usefixtures("chunks")
def test_scatter_and_importance_samples_match_brute_force(study: Study) -> None:
    shown = [
        r
        for r in study.rows
        if r["state"] in ("COMPLETE", "PRUNED")
        and _finite(r["value"])
        and _finite(r["learning_rate"])
    ]
    assert len(shown) < sum(
        r["state"] in ("COMPLETE", "PRUNED") and _finite(r["value"]) for r in study.rows
    ), "some trials with a value must lack a finite learning rate"
    complete = [r for r in study.rows if r["state"] == "COMPLETE" and _finite(r["value"])]
    with study.backend.engine.connect() as conn:
        for limit in LIMITS:
            s = queries.scatter_sample(conn, study.record, limit=limit)
            total, sample = _strided(shown, limit)
            assert s.total == total
            assert s.numbers == [r["number"] for r in sample], limit
            assert s.learning_rates == [r["learning_rate"] for r in sample]
            assert s.values == [r["value"] for r in sample]
            assert s.states == [r["state"] for r in sample]
            assert s.schedules == [r["schedule"] for r in sample]
            trials = queries.importance_sample(conn, study.record, limit=limit)
            _, sample = _strided(complete, limit)
            assert [t.value for t in trials] == [r["value"] for r in sample]
