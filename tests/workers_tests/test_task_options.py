"""``task_options`` of a study definition reach the built-in task through the worker.

The definition bounds their size and rejects non-finite numbers; the task judges
names and values, and a study whose options a task rejects fails its trials
with the task's message and stops as failed after ``max_consecutive_failures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import DefinitionError, parse_definition
from lrsearch.workers._errors import TaskError
from lrsearch.workers.loop import WorkerOptions, run_worker
from lrsearch.workers.tasks import NpzClassifierTask, SyntheticTask


def _create(url: str, name: str, **overrides: Any) -> storage.StudyRecord:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "budget": {"n_trials": 3, "max_epochs": 2},
        "sampler": {"type": "random", "seed": 1},
        "pruner": {"type": "none"},
        **overrides,
    }
    backend = storage.open_backend(url)
    try:
        return storage.create_study(backend, parse_definition(raw))
    finally:
        backend.dispose()


def _run(url: str, name: str, worker_options: dict[str, Any] | None = None) -> None:
    run_worker(
        WorkerOptions(
            storage_url=url,
            study=name,
            device="cpu",
            idle_exit=1.0,
            poll_interval=0.1,
            install_signal_handlers=False,
            task_options=worker_options or {},
        )
    )


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    rdb = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=rdb).get_trials()
    finally:
        rdb.engine.dispose()


def _npz(path: Path, *, classes: int = 3) -> Path:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, 8)) * 3.0
    arrays = {}
    for split, n in (("train", 96), ("val", 48)):
        labels = rng.integers(0, classes, size=n)
        arrays[f"x_{split}"] = (centres[labels] + rng.normal(size=(n, 8))).astype(np.float32)
        arrays[f"y_{split}"] = labels.astype(np.int64)
    np.savez(path, **arrays)
    return path


def test_npz_classifier_trains_on_the_file_named_in_the_definition(
    storage_url: str, study_name: str, tmp_path: Path
) -> None:
    data = _npz(tmp_path / "blobs.npz")
    _create(storage_url, study_name, task="npz-classifier", task_options={"path": str(data)})
    _run(storage_url, study_name)  # the worker itself has no path
    trials = _trials(storage_url, study_name)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(len(t.user_attrs["lr_curve"]) == 2 for t in trials)


def test_the_definitions_options_win_over_the_workers(
    sqlite_url: str, study_name: str, tmp_path: Path
) -> None:
    good = _npz(tmp_path / "good.npz")
    _create(sqlite_url, study_name, task="npz-classifier", task_options={"path": str(good)})
    _run(sqlite_url, study_name, {"path": str(tmp_path / "missing.npz")})
    assert [t.state for t in _trials(sqlite_url, study_name)] == [TrialState.COMPLETE] * 3


def test_the_workers_options_fill_in_what_the_definition_leaves_out(
    sqlite_url: str, study_name: str, tmp_path: Path
) -> None:
    good = _npz(tmp_path / "good.npz", classes=3)
    # num_classes from the study, path from the worker: 4 outputs although labels stop at 2.
    _create(sqlite_url, study_name, task="npz-classifier", task_options={"num_classes": 4})
    _run(sqlite_url, study_name, {"path": str(good)})
    assert [t.state for t in _trials(sqlite_url, study_name)] == [TrialState.COMPLETE] * 3


def test_an_unknown_option_fails_the_trials_and_stops_the_study(
    storage_url: str, study_name: str
) -> None:
    _create(
        storage_url,
        study_name,
        budget={"n_trials": 10, "max_epochs": 2},
        task_options={"n_train": 128, "n_hiden": 8, "separation": "far"},
    )
    _run(storage_url, study_name)
    trials = _trials(storage_url, study_name)
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # max_consecutive_failures
    for t in trials:
        error = t.user_attrs["error"]
        assert error.startswith("TaskError: ")
        assert "'n_hiden'" in error
        assert "'separation' must be a number" in error
        assert "(accepted: ['hidden', 'n_classes', 'n_features'" in error
    backend = storage.open_backend(storage_url)
    try:
        record = storage.get_study(backend, study_name)
    finally:
        backend.dispose()
    assert record.state == "failed"
    assert "TaskError" in (record.state_reason or "")


@pytest.mark.parametrize(
    ("task", "options", "expected"),
    [
        (SyntheticTask, {"n_train": 0, "n_classes": 1, "colour": "red"}, 3),
        (NpzClassifierTask, {"path": 5, "num_classes": 1, "shuffle": True}, 3),
    ],
    ids=["synthetic", "npz-classifier"],
)
def test_a_task_names_every_bad_option_at_once(
    task: Any, options: dict[str, Any], expected: int
) -> None:
    with pytest.raises(TaskError) as caught:
        task(options)
    assert len(str(caught.value).split("; ")) == expected, str(caught.value)
    for name in options:
        assert repr(name) in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"x": float("nan")}, "x: must be a finite number, got nan"),
        ({"a": {"b": [float("inf")]}}, "a.b[0]: must be a finite number, got inf"),
        ({"p": "x" * 5000}, "p: longer than 4096 characters"),
        ({f"k{i}": i for i in range(65)}, "more than 64 entries"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "a.b.c.d: nested deeper than 4 levels"),
        ([1, 2], "Input should be a valid dictionary"),
    ],
    ids=["nan", "nested-inf", "long-string", "too-many-keys", "too-deep", "not-an-object"],
)
def test_the_definition_bounds_task_options(options: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition({"name": "s", "task": "synthetic", "task_options": options})
    assert [p.loc for p in caught.value.problems] == [("task_options",)]
    assert message in caught.value.problems[0].msg


def test_every_problem_of_task_options_is_listed() -> None:
    options = {"x": float("nan"), "y": "z" * 5000}
    with pytest.raises(DefinitionError) as caught:
        parse_definition({"name": "s", "task": "synthetic", "task_options": options})
    (problem,) = caught.value.problems
    assert "x: must be a finite number" in problem.msg
    assert "y: longer than 4096" in problem.msg
