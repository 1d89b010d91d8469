"""The public surface of workers and workers.tasks is what ``__all__`` says."""

from __future__ import annotations

from types import ModuleType

import pytest

from lrsearch import workers
from lrsearch.workers import device, models, tasks, training  # noqa: F401


@pytest.mark.parametrize(
    "module", [workers, workers.tasks, workers.training, workers.models], ids=lambda m: m.__name__
)
def test_every_exported_name_exists_once(module: ModuleType) -> None:
    names = module.__all__
    assert len(set(names)) == len(names)
    assert all(hasattr(module, name) for name in names)


def test_workers_exports() -> None:
    assert set(workers.__all__) == {
        "DeviceError",
        "Task",
        "TaskData",
        "TaskDataError",
        "TaskError",
        "TrainResult",
        "TrainingInterrupted",
        "UnknownTaskError",
        "WorkerError",
        "get_task",
        "resolve_device",
        "task_names",
        "train_trial",
    }


def test_workers_tasks_exports() -> None:
    assert set(workers.tasks.__all__) == {
        "ENTRY_POINT_GROUP",
        "DigitsMLPTask",
        "NpzClassifierTask",
        "SyntheticTask",
        "Task",
        "TaskData",
        "TaskFactory",
        "get_task",
        "task_names",
    }
