"""Pieces of ``--pack``: one heartbeat thread for a pack's trials, a trial's slot, its task."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import optuna

from lrsearch import storage
from lrsearch.search_space import StudyDefinition, TrialConfig
from lrsearch.workers._loop_support import DB_ERRORS, short_error
from lrsearch.workers.lr_range import resolve_auto_learning_rate
from lrsearch.workers.tasks import Task, get_task

if TYPE_CHECKING:
    from lrsearch.workers.loop import Worker

log = logging.getLogger("lrsearch.workers.loop")


class PackHeartbeat:
    """Background thread for a pack: heartbeats every trial of it, and sweeps the study.

    Like :class:`~lrsearch.workers._loop_support.Heartbeat` for a set of trials
    that changes as trials join and leave. ``lost`` holds the ids of trials
    found ended by someone else.
    """

    def __init__(
        self,
        backend: storage.Backend,
        interval: float,
        sweep: Callable[[], None],
        on_db_error: Callable[[], None],
    ) -> None:
        self.lost: set[int] = set()
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._backend, self._interval = backend, interval
        self._sweep, self._on_db_error = sweep, on_db_error
        self._thread = threading.Thread(target=self._run, daemon=True, name="pack-heartbeat")

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._ids.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                ids = sorted(self._ids)
            for trial_id in ids:
                try:
                    if not storage.heartbeat(self._backend, trial_id):
                        with self._lock:
                            self.lost.add(trial_id)
                            self._ids.discard(trial_id)
                except DB_ERRORS as exc:
                    self._on_db_error()
                    log.warning("heartbeat for trial id %d failed: %s", trial_id, short_error(exc))
            try:
                self._sweep()
            except Exception as exc:
                log.warning("stale-trial sweep failed: %s", short_error(exc))

    def __enter__(self) -> PackHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Slot:
    """One claimed and sampled trial of a pack, with what it has trained so far."""

    trial: optuna.Trial
    config: TrialConfig
    seed: int
    started: float = field(default_factory=time.monotonic)
    lr_curve: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    reported: int = -1  # the last epoch reported to Optuna; kept when the slot restarts


def resolved_definition(
    worker: Worker, backend: storage.Backend, record: storage.StudyRecord
) -> StudyDefinition:
    """The definition trials are sampled from: with ``learning_rate: auto``, the range test's."""
    auto = record.definition
    if not auto.learning_rate_auto:
        return auto
    return worker._patiently(
        lambda: resolve_auto_learning_rate(
            backend, record, study_task(worker, auto), device=worker.device
        ),
        "LR range test",
    )


def study_task(worker: Worker, definition: StudyDefinition) -> Task:
    """The study's task; its options win over the worker's, key by key."""
    return get_task(definition.task, {**worker.options.task_options, **definition.task_options})
