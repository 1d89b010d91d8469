"""Workers: tasks (data + model), the PyTorch training loop and device handling."""

from lrsearch.workers._errors import (
    DeviceError,
    TaskDataError,
    TaskError,
    TrainingInterrupted,
    UnknownTaskError,
    WorkerError,
)
from lrsearch.workers.device import resolve_device
from lrsearch.workers.tasks import Task, TaskData, get_task, task_names
from lrsearch.workers.training import TrainResult, train_trial

__all__ = [
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
]
