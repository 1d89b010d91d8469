"""Errors raised by :mod:`workers`.

Hierarchy::

    WorkerError
    ├── TaskError              a task cannot be built or its data is unusable
    │   ├── UnknownTaskError   no task is registered under the requested name
    │   └── TaskDataError      a task's data is missing, malformed or inconsistent
    ├── DeviceError            the requested device is unknown or unavailable
    └── TrainingInterrupted    a stop was requested at an epoch boundary

``TrainingInterrupted`` is not a failure of the trial: the caller hands the
trial back (or re-queues it) instead of marking it failed.
"""

from __future__ import annotations

from collections.abc import Iterable


class WorkerError(Exception):
    """Root of the errors raised by :mod:`workers`."""


class TaskError(WorkerError):
    """A task cannot be loaded, configured or used."""


class UnknownTaskError(TaskError):
    """No task is registered under ``name``; ``registered`` lists those that are."""

    def __init__(self, name: str, registered: Iterable[str]) -> None:
        self.name = name
        self.registered: tuple[str, ...] = tuple(sorted(registered))
        super().__init__(f"unknown task {name!r}; registered tasks: {list(self.registered)}")


class TaskDataError(TaskError):
    """A task's data is missing, malformed or inconsistent."""


class DeviceError(WorkerError):
    """The requested device is unknown, or not available on this machine."""


class TrainingInterrupted(WorkerError):  # noqa: N818 -- a control signal, not a failure
    """Training stopped at an epoch boundary because a stop was requested.

    ``epochs_run`` is the number of epochs finished before the stop.
    """

    def __init__(self, epochs_run: int) -> None:
        self.epochs_run = epochs_run
        super().__init__(f"training interrupted on request after {epochs_run} epoch(s)")
