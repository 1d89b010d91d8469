"""Out of GPU memory is a constraint, not noise.

A trial that runs out of memory ends PRUNED (not FAIL, not retried) with its
``oom`` error, records which batch size did not fit on which device, and under
TPE carries constraint ``oom`` > 0 so the sampler ranks it infeasible. No GPU
here: the test task's model raises a real ``torch.cuda.OutOfMemoryError``
(constructible on CPU) for batches of 128 or more, as a card too small would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.cli.client_cmds import infeasible_line
from lrsearch.search_space import parse_definition, validate_fixed_params
from lrsearch.service import Settings, create_app
from lrsearch.workers.loop import Worker, WorkerOptions
from tests.distributed_tests.plugin_tasks import OOM_FROM_BATCH

BIG, SMALL = 256, 32
PLAN = [BIG, SMALL, BIG, SMALL]  # claim order of the enqueued trials


@pytest.fixture
def oom_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``test-oom`` (tests/distributed_tests/plugin_tasks.py) as a plugin task."""
    info = tmp_path / "lrsearch_oom_task-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lrsearch-oom-task\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lrsearch.tasks]\ntest-oom = tests.distributed_tests.plugin_tasks:OomTask\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "test-oom"


def _study(url: str, name: str, task: str, sampler: str) -> storage.StudyRecord:
    definition = parse_definition(
        {
            "name": name,
            "task": task,
            "budget": {"n_trials": len(PLAN), "max_epochs": 2},
            "sampler": {"type": sampler, "seed": 0},
            "pruner": {"type": "none"},
            "search_space": {
                "batch_size": [SMALL, BIG],
                "learning_rate": {"low": 0.01, "high": 0.2, "log": True},
                "schedules": ["step"],
                "warmup_epochs": 0,
            },
        }
    )
    backend = storage.open_backend(url)
    try:
        record = storage.create_study(backend, definition)
        study = storage.load_optuna_study(backend, record)
        for bs in PLAN:
            params = {
                "schedule": "step",
                "step.step_size": 1,
                "step.gamma": 0.5,
                "learning_rate": 0.05,
                "batch_size": bs,
                "dropout": 0.0,
                "weight_init": "default",
            }
            validate_fixed_params(definition, params)
            storage.enqueue_fixed(backend, study, record, params)
        return record
    finally:
        backend.dispose()


def _run(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    worker = Worker(
        WorkerOptions(
            storage_url=url,
            study=name,
            device="cpu",
            idle_exit=2.0,
            poll_interval=0.1,
            install_signal_handlers=False,
        )
    )
    stats = worker.run()
    assert stats.trials == len(PLAN)
    rdb = optuna.storages.RDBStorage(url)
    try:
        return sorted(
            optuna.load_study(study_name=name, storage=rdb).get_trials(), key=lambda t: t.number
        )
    finally:
        rdb.engine.dispose()


def _assert_budget(trials: list[optuna.trial.FrozenTrial]) -> None:
    """COMPLETE + PRUNED + unrepeated FAIL == n_trials: no OOM trial was retried."""
    assert all("retry_of" not in t.user_attrs for t in trials)
    ended = [t for t in trials if t.state.is_finished()]
    assert len(ended) == len(trials) == len(PLAN)


def test_oom_trials_end_pruned_infeasible_and_constrained_under_tpe(
    storage_url: str, study_name: str, oom_task: str
) -> None:
    assert SMALL < OOM_FROM_BATCH <= BIG
    _study(storage_url, study_name, oom_task, "tpe")
    trials = _run(storage_url, study_name)

    _assert_budget(trials)
    assert [t.params["batch_size"] for t in trials] == PLAN
    for t in trials:
        if t.params["batch_size"] == BIG:
            assert t.state == TrialState.PRUNED
            assert str(t.user_attrs["error"]).startswith("oom: CUDA out of memory")
            assert t.user_attrs["infeasible"] == {
                "batch_size": BIG,
                "device": "cpu",
                "memory_gb": None,
            }
            # Read back from storage: what TPE's _split_trials sees.
            assert t.constraints == {"oom": 1.0}
        else:
            assert t.state == TrialState.COMPLETE
            assert "infeasible" not in t.user_attrs
            assert t.constraints == {"oom": 0.0}

    with TestClient(create_app(Settings(storage=storage_url, auth_disabled=True))) as client:
        response = client.get(f"/api/v1/studies/{study_name}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["counts"]["PRUNED"] == PLAN.count(BIG)
    assert body["infeasible"] == [
        {"batch_size": BIG, "device": "cpu", "memory_gb": None, "trials": PLAN.count(BIG)}
    ]


def test_tpe_ranks_oom_trials_infeasible(storage_url: str, study_name: str, oom_task: str) -> None:
    # TPE splits trials into good/bad groups; infeasible ones always go to the
    # bad group, whatever their (pruned) value. This is the function it uses.
    from optuna.samplers._tpe.sampler import _get_infeasible_trial_score

    _study(storage_url, study_name, oom_task, "tpe")
    trials = _run(storage_url, study_name)
    infeasible = {t.number for t in trials if _get_infeasible_trial_score(t) > 0}
    assert infeasible == {t.number for t in trials if t.params["batch_size"] == BIG}


@pytest.mark.parametrize("sampler", ["random", "cmaes"])
def test_oom_under_samplers_without_constraints_is_pruned_and_unconstrained(
    storage_url: str, study_name: str, oom_task: str, sampler: str
) -> None:
    # CMA-ES warns on every constrained trial (an error under filterwarnings),
    # so samplers that ignore constraints must not get any.
    _study(storage_url, study_name, oom_task, sampler)
    trials = _run(storage_url, study_name)
    _assert_budget(trials)
    oom = [t for t in trials if t.params["batch_size"] == BIG]
    assert [t.state for t in oom] == [TrialState.PRUNED] * 2
    assert all(t.user_attrs["infeasible"]["batch_size"] == BIG for t in oom)
    assert all(t.constraints == {} for t in trials)


def _infeasible_attr(trial: optuna.Trial, value: Any) -> None:
    trial.set_user_attr("infeasible", value)


def test_infeasible_batches_group_by_batch_size_and_device(
    storage_url: str, study_name: str, tmp_path: Path
) -> None:
    backend = storage.open_backend(storage_url)
    try:
        study = optuna.create_study(study_name=study_name, storage=backend.optuna_storage)
        attrs: list[Any] = [
            {"batch_size": 512, "device": "NVIDIA A10", "memory_gb": 22.0},
            {"batch_size": 512, "device": "NVIDIA A10", "memory_gb": 22.0},
            {"batch_size": 512, "device": "NVIDIA H100", "memory_gb": 79.2},
            {"batch_size": 256, "device": "NVIDIA A10", "memory_gb": 22.0},
            "not a record",  # someone else's attr of that name: ignored
        ]
        for value in attrs:
            trial = study.ask()
            _infeasible_attr(trial, value)
            study.tell(trial, state=TrialState.PRUNED)
        other = optuna.create_study(study_name=study_name + "-o", storage=backend.optuna_storage)
        trial = other.ask()
        _infeasible_attr(trial, {"batch_size": 8, "device": "x", "memory_gb": 1.0})
        other.tell(trial, state=TrialState.PRUNED)
        with backend.engine.connect() as conn:
            found = storage.infeasible_batches(conn, study._study_id)
    finally:
        backend.dispose()
    assert found == [
        storage.InfeasibleBatch(256, "NVIDIA A10", 22.0, 1),
        storage.InfeasibleBatch(512, "NVIDIA A10", 22.0, 2),
        storage.InfeasibleBatch(512, "NVIDIA H100", 79.2, 1),
    ]


def test_status_line_names_batch_size_device_and_memory() -> None:
    line = infeasible_line(
        [
            {"batch_size": 512, "device": "NVIDIA A10", "memory_gb": 22.0, "trials": 2},
            {"batch_size": 256, "device": "cpu", "memory_gb": None, "trials": 1},
        ]
    )
    assert line == "out of memory: batch 512 on NVIDIA A10 (22.0 GiB) x2; batch 256 on cpu x1"
