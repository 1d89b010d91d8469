"""``task: external``: valid with any metric name and a direction; built-in workers skip it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lrsearch import storage
from lrsearch.search_space import DefinitionError, parse_definition
from lrsearch.workers.loop import Worker, WorkerOptions
from tests.service_tests.conftest import Api


def _raw(**fields: Any) -> dict[str, Any]:
    return {"name": f"ext-{uuid.uuid4().hex[:10]}", "task": "external", **fields}


def test_external_accepts_any_metric_with_a_direction() -> None:
    d = parse_definition(
        _raw(objective={"metric": "bleu_score", "direction": "maximize"}),
        known_tasks={"synthetic"},
    )
    assert (d.task, d.objective.metric, d.direction) == ("external", "bleu_score", "maximize")


def test_external_requires_the_direction() -> None:
    with pytest.raises(DefinitionError) as err:
        parse_definition(_raw(objective={"metric": "bleu"}), known_tasks={"synthetic"})
    assert [p.loc for p in err.value.problems] == [("objective", "direction")]


def test_builtin_task_keeps_its_metrics_and_all_problems_are_listed() -> None:
    with pytest.raises(DefinitionError) as err:
        parse_definition(
            {
                "name": "x",
                "task": "synthetic",
                "objective": {"metric": "bleu", "direction": "maximize"},
                "budget": {"n_trials": 0},
            },
            known_tasks={"synthetic"},
        )
    locs = {p.loc for p in err.value.problems}
    assert {("objective", "metric"), ("budget", "n_trials")} <= locs


def test_rest_creates_an_external_study(api: Api) -> None:
    body = _raw(objective={"metric": "my_metric", "direction": "minimize"})
    response = api.post("/studies", json=body)
    assert response.status_code == 201, response.text
    missing = api.post("/studies", json=_raw(objective={"metric": "my_metric"}))
    assert missing.status_code == 422
    assert [e["loc"] for e in missing.json()["errors"]] == [["objective", "direction"]]


def test_builtin_workers_skip_external_studies(storage_url: str) -> None:
    backend = storage.open_backend(storage_url)
    try:
        record = storage.create_study(
            backend,
            parse_definition(
                _raw(
                    objective={"metric": "val_accuracy", "direction": "maximize"},
                    budget={"n_trials": 2, "max_epochs": 1},
                )
            ),
        )
        options = WorkerOptions(
            storage_url=storage_url,
            # Only this study: the PostgreSQL test database holds other tests' studies.
            study=record.name,
            device="cpu",
            idle_exit=0.5,
            poll_interval=0.1,
            install_signal_handlers=False,
        )
        stats = Worker(options).run()
        assert stats.trials == 0
        with backend.engine.connect() as conn:
            assert storage.budget_counts(conn, record).total == 0
    finally:
        backend.dispose()
