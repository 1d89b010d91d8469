"""The task contract (data + model) and the entry-point registry of tasks.

A task is found by name among the entry points of group ``lrsearch.tasks``.
Each entry point names a factory, usually the task class itself, that is
called with one positional argument, the task options (a mapping, empty when
none were given), and returns an object satisfying :class:`Task`. A third-party
package registers its own tasks the same way in its ``pyproject.toml``::

    [project.entry-points."lrsearch.tasks"]
    my-task = "my_package.tasks:MyTask"
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from lrsearch.workers._errors import TaskDataError, TaskError, UnknownTaskError

ENTRY_POINT_GROUP = "lrsearch.tasks"


@dataclass(frozen=True, eq=False)
class TaskData:
    """A task's training and validation split, as CPU tensors.

    Attributes:
        x_train: ``float32`` inputs, shape ``(N, ...)``.
        y_train: ``int64`` class labels in ``[0, num_classes)``, shape ``(N,)``.
        x_val: ``float32`` inputs with the same per-example shape as ``x_train``.
        y_val: ``int64`` class labels, shape ``(M,)``.
        num_classes: Number of classes (model outputs).

    Raises:
        TaskDataError: On construction, when dtypes, shapes or labels disagree.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        problems = []
        for split, x, y in (("train", self.x_train, self.y_train), ("val", self.x_val, self.y_val)):
            if x.dtype != torch.float32:
                problems.append(f"x_{split} must be float32, got {x.dtype}")
            if y.dtype != torch.int64:
                problems.append(f"y_{split} must be int64, got {y.dtype}")
            if x.ndim < 2 or y.ndim != 1:
                problems.append(
                    f"x_{split} must be (N, ...) and y_{split} (N,); "
                    f"got {tuple(x.shape)} and {tuple(y.shape)}"
                )
            elif x.shape[0] != y.shape[0]:
                problems.append(f"x_{split} has {x.shape[0]} rows but y_{split} {y.shape[0]}")
            if y.numel() == 0:
                problems.append(f"the {split} split is empty")
            elif y.dtype == torch.int64 and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                problems.append(f"y_{split} has labels outside [0, {self.num_classes})")
        if self.x_train.shape[1:] != self.x_val.shape[1:]:
            problems.append(
                f"x_train examples have shape {tuple(self.x_train.shape[1:])} "
                f"but x_val examples {tuple(self.x_val.shape[1:])}"
            )
        if self.num_classes < 2:
            problems.append(f"num_classes must be at least 2, got {self.num_classes}")
        if problems:
            raise TaskDataError("; ".join(problems))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])


@runtime_checkable
class Task(Protocol):
    """What a worker needs from a task: its data and a fresh model.

    Implementations should be cheap to construct and may cache loaded data.
    ``build_model`` is called after ``load_data`` (tasks whose model depends on
    the data shape may rely on that) and with torch's global generator already
    seeded, so it must draw weights from it.
    """

    name: str

    def load_data(self, seed: int) -> TaskData:
        """The train/validation split; the same ``seed`` must give the same split."""
        ...

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        """A freshly initialised model (see :func:`workers.models.init_weights`)."""
        ...


TaskFactory = Callable[[Mapping[str, Any]], Task]


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def task_names() -> list[str]:
    """The names of every registered task, sorted."""
    return sorted({ep.name for ep in _entry_points()})


def get_task(name: str, options: Mapping[str, Any] | None = None) -> Task:
    """Build the task registered under ``name``.

    Args:
        name: The entry-point name in group ``lrsearch.tasks`` (e.g. ``"digits-mlp"``).
        options: Task-specific options passed to the task's factory.

    Raises:
        UnknownTaskError: No task is registered under ``name``.
        TaskError: The task's module cannot be imported, its factory rejects
            the options, or it returns something that is not a :class:`Task`.
    """
    found = [ep for ep in _entry_points() if ep.name == name]
    if not found:
        raise UnknownTaskError(name, task_names())
    entry = found[0]
    try:
        factory = entry.load()
    except Exception as exc:
        raise TaskError(f"task {name!r} ({entry.value}) cannot be loaded: {exc}") from exc
    if not callable(factory):
        raise TaskError(f"task {name!r} ({entry.value}) is not callable")
    try:
        task = factory(dict(options or {}))
    except TaskError:
        raise
    except Exception as exc:
        raise TaskError(f"task {name!r} rejected its options: {exc}") from exc
    if not isinstance(task, Task):
        raise TaskError(f"task {name!r} ({entry.value}) does not implement the Task protocol")
    return task


class TaskCache:
    """The tasks one worker has built, reused from trial to trial.

    Building a task scans the entry points and constructs it, and a fresh task
    has none of its data cached: a worker that built the task for every trial
    reloaded the data (digits: the whole dataset) every time. Entries are keyed
    by task name, options and ``data_seed``; the least recently used one is
    dropped beyond ``size``. Errors are not cached: a task that cannot be built
    is tried again on the next trial.
    """

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._tasks: OrderedDict[tuple[str, str, int], Task] = OrderedDict()

    def get(self, name: str, options: Mapping[str, Any], data_seed: int) -> Task:
        """The task as :func:`get_task` builds it, built once per key.

        Raises:
            UnknownTaskError: See :func:`get_task`.
            TaskError: See :func:`get_task`.
        """
        key = (name, json.dumps(dict(options), sort_keys=True, default=repr), data_seed)
        task = self._tasks.get(key)
        if task is None:
            task = get_task(name, options)
            self._tasks[key] = task
            while len(self._tasks) > self._size:
                self._tasks.popitem(last=False)
        self._tasks.move_to_end(key)
        return task


def unknown_options(task: str, options: Mapping[str, Any], known: set[str]) -> list[str]:
    """The problem with option names a task does not understand, if any (at most one line)."""
    unknown = sorted(set(options) - known)
    if not unknown:
        return []
    return [f"task {task!r} got unknown options {unknown} (accepted: {sorted(known)})"]


def check_options(task: str, options: Mapping[str, Any], known: set[str]) -> None:
    """Reject option names a task does not understand (a typo would otherwise pass silently).

    Raises:
        TaskError: Listing the unknown and the accepted option names.
    """
    problems = unknown_options(task, options, known)
    if problems:
        raise TaskError(problems[0])
