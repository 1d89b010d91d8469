"""The pull loop behind ``lrsearch worker``.

Each iteration: pick a running study with budget left, claim a trial under the
study's lock, sample its configuration, train with heartbeats, report every
epoch, and finish it. Nothing that happens inside a trial stops the worker:
failures end that trial (FAIL, with the reason in its ``error`` user attr), and
lost database connections are waited out with backoff.

Faults, and what the worker does about them:

- The database goes away between trials: back off (1 s doubling to 30 s, with
  jitter), reconnect, go on.
- The database goes away during a trial: ``report``/``should_prune`` and the
  final ``tell`` wait for it with backoff, so the trial goes on; if meanwhile
  another worker failed it as stale (our heartbeats could not land), the trial
  is abandoned and its retry runs elsewhere.
- SIGTERM/SIGINT: stop at the next epoch boundary, give the trial back for a
  retry, exit 0. If that takes longer than ``stop_timeout_s`` (an epoch longer
  than that, a hung call), a watchdog gives the trial back itself and exits 0.
  A second signal exits at once (the trial then goes stale and is retried).
- CUDA out of memory: the trial ends PRUNED (not retried) with reason ``oom``
  and user attr ``infeasible`` (batch size, device, memory); under TPE it also
  carries constraint ``oom`` = 1 so the sampler treats it as infeasible (other
  trials get 0). Cached GPU memory is released, the worker goes on.
- This worker dies: its trial's heartbeat stops and any other worker (or the
  service) fails it as stale after ``grace_s`` and retries it.
- One study keeps raising, or one trial's result cannot be recorded: see
  :mod:`lrsearch.workers._studies` (skipped, then marked failed) and
  ``storage.finish_trial`` (the trial ends FAIL with the reason).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import optuna
import torch
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import EXTERNAL_TASK, sample_config
from lrsearch.workers._errors import TrainingInterrupted
from lrsearch.workers._loop_support import (
    DB_ERRORS,
    MAX_BACKOFF_S,
    Heartbeat,
    PatientTrial,
    TrialEnd,
    TrialOutcome,
    WorkerOptions,
    WorkerStats,
    device_label,
    hand_back,
    infeasible_record,
    is_cuda_oom,
    patiently,
    record_trial,
    short_error,
)
from lrsearch.workers._pack_loop import run_pack
from lrsearch.workers._signals import install_stop_signals
from lrsearch.workers._studies import StudyPool
from lrsearch.workers.device import resolve_device
from lrsearch.workers.lr_range import resolve_auto_learning_rate
from lrsearch.workers.settings import parse_pack
from lrsearch.workers.supervisor import follow_supervisor
from lrsearch.workers.tasks._registry import TaskCache
from lrsearch.workers.training import train_seed, train_trial

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["TrialOutcome", "Worker", "WorkerOptions", "WorkerStats", "device_label", "run_worker"]


class Worker:
    """One worker process: pulls trials from the shared storage until told to stop."""

    def __init__(
        self,
        options: WorkerOptions,
        *,
        on_trial: Callable[[TrialOutcome], None] | None = None,
    ) -> None:
        parse_pack(options.pack)  # a bad value fails here, not in the first pack
        self.options = options
        self.on_trial = on_trial
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.device = resolve_device(options.device)
        self.device_label = device_label(self.device)
        self._stop = threading.Event()
        self._exited = threading.Event()
        self._pool = StudyPool()
        self._tasks = TaskCache()  # built once, not per trial (data loads, entry points)
        self._unreadable: set[int] = set()  # studies skipped for their definition, logged once
        self._last_sweep: dict[str, float] = {}
        self._backend: storage.Backend | None = None
        self._current: tuple[storage.StudyRecord, optuna.Study, optuna.Trial] | None = None
        # The trials of the running pack (``--pack``), given back like ``_current``,
        # and the most trials of each pack key that fit the device's memory.
        self.packed: list[tuple[storage.StudyRecord, optuna.Study, optuna.Trial]] = []
        self.pack_caps: dict[Any, int] = {}
        self._db_error_at: float | None = None
        if options.grace_s < 2 * options.heartbeat_s:
            log.warning(
                "grace period %.3g s is shorter than two heartbeats (%.3g s each): live "
                "trials may be failed as stale",
                options.grace_s,
                options.heartbeat_s,
            )

    # -- control ---------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current epoch, hand the trial back for retry, then exit."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _give_back_current(self) -> None:
        backend = self._backend
        if backend is None:
            return
        for record, study, trial in [*([self._current] if self._current else []), *self.packed]:
            self._hand_back(
                backend, study, trial, record, reason="interrupted: worker stopped (stop timeout)"
            )

    # -- main loop -------------------------------------------------------------

    def run(self) -> WorkerStats:
        """Run until ``max_trials``, ``idle_exit``, a signal, or the ``--study`` is done."""
        opts = self.options
        restore_signals: Callable[[], None] | None = None
        if opts.install_signal_handlers and threading.current_thread() is threading.main_thread():
            restore_signals = install_stop_signals(
                self._stop, self._exited, opts.stop_timeout_s, self._give_back_current
            )
            follow_supervisor()
        stats = WorkerStats()
        backoff = 1.0
        idle_since = time.monotonic()
        log.info("worker %s on %s", self.worker_id, self._where())
        try:
            while not self._stop.is_set():
                if opts.max_trials is not None and stats.trials >= opts.max_trials:
                    break
                try:
                    backend = self._connect()
                    claimed = self._claim(backend)
                    over = claimed is None and self._study_over(backend)
                    backoff = 1.0
                except DB_ERRORS as exc:
                    self._note_db_error()
                    # Jitter: many workers that lost the same server must not all
                    # reconnect in the same instant when it comes back.
                    wait = backoff * random.uniform(0.8, 1.2)
                    log.warning(
                        "storage unavailable (%s); retrying in %.1f s", short_error(exc), wait
                    )
                    self._drop_connection()
                    self._stop.wait(wait)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                if claimed is None:
                    if over:
                        break
                    if (
                        opts.idle_exit is not None
                        and time.monotonic() - idle_since > opts.idle_exit
                    ):
                        log.info("no work for %.0f s; exiting", opts.idle_exit)
                        break
                    self._stop.wait(opts.poll_interval)
                    continue
                record, study, trial = claimed
                if opts.pack != 1 and record.definition.packing:
                    run_pack(self, backend, record, study, trial, stats)
                else:
                    self._tally(stats, self._run_trial(backend, record, study, trial))
                idle_since = time.monotonic()
        finally:
            self._drop_connection()
            self._exited.set()
            if restore_signals is not None:
                restore_signals()
        return stats

    def _tally(self, stats: WorkerStats, outcome: TrialOutcome | None) -> None:
        if outcome is not None:
            stats.trials += 1
            stats.by_state[outcome.state] = stats.by_state.get(outcome.state, 0) + 1
            if self.on_trial is not None:
                self.on_trial(outcome)

    def _where(self) -> str:
        where = self.device_label
        if self.options.label:
            where += f" ({self.options.label})"
        return where

    def _connect(self) -> storage.Backend:
        if self._backend is None:
            self._backend = storage.open_backend(
                self.options.storage_url,
                pool_size=2,
                application_name=f"lrsearch-worker:{os.getpid()}",
                # Every call of ours is retried on a lost connection: no ping per checkout.
                pre_ping=False,
            )
        return self._backend

    def _drop_connection(self) -> None:
        if self._backend is not None:
            try:
                self._backend.dispose()
            finally:
                self._backend = None
                self._pool.drop_connection()

    def _candidates(self, backend: storage.Backend) -> list[storage.StudyRecord]:
        if self.options.study is not None:
            return [storage.get_study(backend, self.options.study)]
        return storage.list_studies(backend, states=("running",))

    def _claim(
        self, backend: storage.Backend
    ) -> tuple[storage.StudyRecord, optuna.Study, optuna.Trial] | None:
        for record in self._candidates(backend):
            # task: external studies are run by the users' own code, through the client.
            if record.state != "running" or record.task == EXTERNAL_TASK:
                continue
            if record.definition_problem is not None:
                # A definition this release cannot read: skip the study, never crash on it.
                if record.study_id not in self._unreadable:
                    self._unreadable.add(record.study_id)
                    log.warning("skipping study %s: %s", record.name, record.definition_problem)
                continue
            if not self._pool.may_try(record):
                continue
            try:
                study = self._pool.study(backend, record)
                self._sweep_stale(backend, record, study)
                trial = storage.claim_trial(
                    backend, study, worker=self.worker_id, device=self.device_label
                )
            except DB_ERRORS:
                raise
            except Exception as exc:
                self._pool.failed_once(backend, record, exc)
                continue
            self._pool.succeeded(record)
            if trial is not None:
                return record, study, trial
        return None

    def _note_db_error(self) -> None:
        self._db_error_at = time.monotonic()

    def _may_sweep(self) -> bool:
        """Whether our view of heartbeats is trustworthy enough to fail trials as stale.

        Not until a grace period after our own last database error: if the
        outage was everyone's, the other workers need that long to heartbeat
        again, and failing their trials meanwhile would retry live work.
        """
        since = self._db_error_at
        return since is None or time.monotonic() - since >= self.options.grace_s

    def _sweep_stale(
        self, backend: storage.Backend, record: storage.StudyRecord, study: optuna.Study
    ) -> None:
        # Checking costs two small queries; once per half grace period is plenty.
        now = time.monotonic()
        last = self._last_sweep.get(record.name)
        if (last is not None and now - last < self.options.grace_s / 2) or not self._may_sweep():
            return
        self._last_sweep[record.name] = now
        failed = storage.fail_stale_trials(backend, study, record, grace_s=self.options.grace_s)
        if failed:
            log.warning("study %s: trials %s were stale and are retried", record.name, failed)

    def _study_over(self, backend: storage.Backend) -> bool:
        """With ``--study``: true once that study is cancelled or its budget is finished."""
        if self.options.study is None:
            return False
        record = storage.get_study(backend, self.options.study)
        if record.state in ("cancelled", "failed"):
            return True
        with backend.engine.connect() as conn:
            return storage.budget_counts(conn, record).done

    def _patiently(self, call: Callable[[], T], what: str, *, until_stop: bool = True) -> T:
        return patiently(
            call, what, stop=self._stop, on_db_error=self._note_db_error, until_stop=until_stop
        )

    # -- one trial -------------------------------------------------------------

    def _run_trial(
        self,
        backend: storage.Backend,
        record: storage.StudyRecord,
        study: optuna.Study,
        trial: optuna.Trial,
    ) -> TrialOutcome | None:
        log.info("study %s trial #%d started on %s", record.name, trial.number, self._where())

        def sweep() -> None:
            self._sweep_stale(backend, record, study)

        self._current = (record, study, trial)
        try:
            with Heartbeat(
                backend, trial._trial_id, self.options.heartbeat_s, sweep, self._note_db_error
            ) as beat:
                return self._train_and_finish(backend, record, study, trial, beat)
        finally:
            self._current = None

    def _train_and_finish(
        self,
        backend: storage.Backend,
        record: storage.StudyRecord,
        study: optuna.Study,
        trial: optuna.Trial,
        beat: Heartbeat,
    ) -> TrialOutcome | None:
        definition = record.definition
        started = time.monotonic()
        state, value, error, epochs, oom = TrialState.FAIL, None, None, 0, False
        attrs: dict[str, Any] = {}
        patient = PatientTrial(trial, self._patiently)
        try:
            if definition.learning_rate_auto:
                # learning_rate: auto -- the study's first trial runs the LR range
                # test and stores its bounds; every trial samples inside them.
                auto = record.definition
                definition = self._patiently(
                    lambda: resolve_auto_learning_rate(
                        backend,
                        record,
                        self._tasks.get(
                            auto.task,
                            {**self.options.task_options, **auto.task_options},
                            auto.data_seed,
                        ),
                        device=self.device,
                    ),
                    "LR range test",
                )
            config = self._patiently(lambda: sample_config(trial, definition), "sample")
            # The study's options win over this worker's, key by key: the worker
            # supplies host defaults (a data path), the study its own choices.
            task = self._tasks.get(
                definition.task,
                {**self.options.task_options, **definition.task_options},
                definition.data_seed,
            )
            result = train_trial(
                config,
                task,
                objective=definition.objective.metric,
                direction=definition.direction,
                # Duck-typed: train_trial only calls report and should_prune.
                trial=cast(optuna.trial.BaseTrial, patient),
                device=self.device,
                # A retry repeats the failed trial's run, seed included.
                seed=train_seed(
                    definition.data_seed, int(trial.user_attrs.get("retry_of", trial.number))
                ),
                data_seed=definition.data_seed,
                bf16=self.options.bf16,
                stop_requested=lambda: self._stop.is_set() or beat.lost.is_set(),
            )
            epochs = result.epochs_run
            attrs = {"lr_curve": result.lr_curve, "metrics": result.metrics, "epochs_run": epochs}
            if result.status == "complete":
                state, value = TrialState.COMPLETE, result.value
            elif result.status == "pruned":
                state = TrialState.PRUNED
            else:
                error = "diverged: the training loss became NaN or infinite"
        except TrainingInterrupted:
            if beat.lost.is_set():
                log.warning("trial %d was failed as stale elsewhere; abandoning it", trial.number)
                return None
            log.warning("trial %d interrupted; handing it back for retry", trial.number)
            self._hand_back(backend, study, trial, record)
            return None
        except optuna.exceptions.UpdateFinishedTrialError:
            # Our heartbeats could not land for a grace period (database or
            # network outage) and another worker retried the trial meanwhile.
            log.warning("trial %d was failed as stale elsewhere; abandoning it", trial.number)
            return None
        except DB_ERRORS as exc:
            # Only reached when a stop was requested during an outage: the trial
            # stays RUNNING, goes stale, and whichever worker sees it retries it.
            log.warning("storage lost during trial %d: %s", trial.number, short_error(exc))
            return None
        except Exception as exc:
            if is_cuda_oom(exc):
                # PRUNED, not FAIL: Optuna keeps constraints only on COMPLETE
                # or PRUNED trials and TPE ignores FAIL ones, so only thus do
                # samplers learn that this batch size does not fit.
                error, oom, state = f"oom: {short_error(exc)}", True, TrialState.PRUNED
                attrs["infeasible"] = infeasible_record(
                    trial.params.get("batch_size"), self.device, self.device_label
                )
                log.warning("trial %d: CUDA out of memory on %s", trial.number, self._where())
            else:
                log.exception("trial %d of %s failed", trial.number, record.name)
                error = f"{type(exc).__name__}: {short_error(exc)}"
        if oom:
            # After the except block, so the exception (and anything it still
            # references) is gone before the allocator's cache is returned.
            gc.collect()
            torch.cuda.empty_cache()
        return record_trial(
            backend,
            record,
            study,
            trial,
            TrialEnd(state, value, error, attrs, epochs, oom, started),
            patient=self._patiently,
            where=self._where(),
        )

    def _hand_back(
        self,
        backend: storage.Backend,
        study: optuna.Study,
        trial: optuna.Trial,
        record: storage.StudyRecord,
        *,
        reason: str = "interrupted: worker stopped",
    ) -> None:
        hand_back(backend, study, trial, record, reason=reason)


def run_worker(
    options: WorkerOptions, *, on_trial: Callable[[TrialOutcome], None] | None = None
) -> WorkerStats:
    """Build a :class:`Worker` and run it to the end."""
    return Worker(options, on_trial=on_trial).run()
