"""Tasks: a dataset plus a model family, found by name in the ``lrsearch.tasks`` entry points.

Built in: ``digits-mlp`` (:class:`DigitsMLPTask`), ``synthetic``
(:class:`SyntheticTask`) and ``npz-classifier`` (:class:`NpzClassifierTask`).
"""

from lrsearch.workers.tasks._registry import (
    ENTRY_POINT_GROUP,
    Task,
    TaskData,
    TaskFactory,
    get_task,
    task_names,
)
from lrsearch.workers.tasks.digits import DigitsMLPTask
from lrsearch.workers.tasks.npz import NpzClassifierTask
from lrsearch.workers.tasks.synthetic import SyntheticTask

__all__ = [
    "ENTRY_POINT_GROUP",
    "DigitsMLPTask",
    "NpzClassifierTask",
    "SyntheticTask",
    "Task",
    "TaskData",
    "TaskFactory",
    "get_task",
    "task_names",
]
