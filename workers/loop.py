"""The pull loop behind ``lrsearch worker``.

Each iteration: pick a running study with budget left, claim a trial under the
study's lock, sample its configuration, train with heartbeats, report every
epoch, and finish it. Nothing that happens inside a trial stops the worker:
failures end that trial (FAIL, with the reason in its ``error`` user attr), and
lost database connections are waited out with backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import optuna
import sqlalchemy as sa
import torch
from optuna.trial import TrialState

import storage
from search_space import sample_config
from workers._errors import TrainingInterrupted
from workers.device import resolve_device
from workers.tasks import get_task
from workers.training import train_trial

log = logging.getLogger(__name__)

# Errors meaning "the database is unreachable right now", worth waiting out.
_DB_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    optuna.exceptions.StorageInternalError,
)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass
class WorkerOptions:
    """How one worker process runs. Defaults match ``lrsearch worker``'s."""

    storage_url: str | None = None
    study: str | None = None
    device: str = "auto"
    max_trials: int | None = None
    idle_exit: float | None = None
    poll_interval: float = 1.0
    bf16: bool = False
    heartbeat_s: float = field(default_factory=lambda: _env_float("LRSEARCH_HEARTBEAT_S", 10.0))
    grace_s: float = field(default_factory=lambda: _env_float("LRSEARCH_GRACE_S", 60.0))
    task_options: dict[str, Any] = field(default_factory=dict)
    install_signal_handlers: bool = True


@dataclass(frozen=True)
class TrialOutcome:
    """What happened to one trial, for progress output."""

    study: str
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    epochs_run: int
    seconds: float
    error: str | None = None


@dataclass
class WorkerStats:
    trials: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


class _Heartbeat:
    """Background thread that keeps a running trial's heartbeat fresh."""

    def __init__(self, backend: storage.Backend, trial_id: int, interval: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(backend, trial_id, interval), daemon=True, name="heartbeat"
        )

    def _run(self, backend: storage.Backend, trial_id: int, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                storage.heartbeat(backend, trial_id)
            except _DB_ERRORS as exc:
                log.warning("heartbeat for trial id %d failed: %s", trial_id, exc)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Worker:
    """One worker process: pulls trials from the shared storage until told to stop."""

    def __init__(
        self,
        options: WorkerOptions,
        *,
        on_trial: Callable[[TrialOutcome], None] | None = None,
    ) -> None:
        self.options = options
        self.on_trial = on_trial
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.device = resolve_device(options.device)
        self._stop = threading.Event()
        self._studies: dict[str, tuple[storage.StudyRecord, optuna.Study]] = {}
        self._last_sweep: dict[str, float] = {}
        self._backend: storage.Backend | None = None

    # -- control ---------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current epoch, hand the trial back for retry, then exit."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            if self._stop.is_set():
                log.warning("second signal %d: exiting at once", signum)
                os._exit(128 + signum)
            log.warning("signal %d: stopping after the current epoch", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- main loop -------------------------------------------------------------

    def run(self) -> WorkerStats:
        """Run until ``max_trials``, ``idle_exit``, a signal, or the ``--study`` is done."""
        opts = self.options
        if opts.install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._install_signals()
        stats = WorkerStats()
        backoff = 1.0
        idle_since = time.monotonic()
        log.info("worker %s on %s", self.worker_id, self.device)
        try:
            while not self._stop.is_set():
                if opts.max_trials is not None and stats.trials >= opts.max_trials:
                    break
                try:
                    backend = self._connect()
                    claimed = self._claim(backend)
                    backoff = 1.0
                except _DB_ERRORS as exc:
                    log.warning(
                        "storage unavailable (%s); retrying in %.0f s", _short(exc), backoff
                    )
                    self._drop_connection()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if claimed is None:
                    if self._study_over(backend):
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
                outcome = self._run_trial(backend, record, study, trial)
                idle_since = time.monotonic()
                if outcome is not None:
                    stats.trials += 1
                    stats.by_state[outcome.state] = stats.by_state.get(outcome.state, 0) + 1
                    if self.on_trial is not None:
                        self.on_trial(outcome)
        finally:
            self._drop_connection()
        return stats

    def _connect(self) -> storage.Backend:
        if self._backend is None:
            self._backend = storage.open_backend(self.options.storage_url, pool_size=2)
        return self._backend

    def _drop_connection(self) -> None:
        if self._backend is not None:
            try:
                self._backend.dispose()
            finally:
                self._backend = None
                self._studies.clear()

    def _candidates(self, backend: storage.Backend) -> list[storage.StudyRecord]:
        if self.options.study is not None:
            return [storage.get_study(backend, self.options.study)]
        return storage.list_studies(backend, states=("running",))

    def _study(self, backend: storage.Backend, record: storage.StudyRecord) -> optuna.Study:
        cached = self._studies.get(record.name)
        if cached is None or cached[0].study_id != record.study_id:
            study = storage.load_optuna_study(backend, record, seed_salt=os.getpid())
            self._studies[record.name] = (record, study)
            return study
        return cached[1]

    def _claim(
        self, backend: storage.Backend
    ) -> tuple[storage.StudyRecord, optuna.Study, optuna.Trial] | None:
        for record in self._candidates(backend):
            if record.state != "running":
                continue
            study = self._study(backend, record)
            self._sweep_stale(backend, record, study)
            trial = storage.claim_trial(
                backend, study, worker=self.worker_id, device=str(self.device)
            )
            if trial is not None:
                return record, study, trial
        return None

    def _sweep_stale(
        self, backend: storage.Backend, record: storage.StudyRecord, study: optuna.Study
    ) -> None:
        # Checking costs two small queries; once per half grace period is plenty.
        now = time.monotonic()
        if now - self._last_sweep.get(record.name, 0.0) < self.options.grace_s / 2:
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
        if record.state == "cancelled":
            return True
        with backend.engine.connect() as conn:
            return storage.budget_counts(conn, record).done

    # -- one trial -------------------------------------------------------------

    def _run_trial(
        self,
        backend: storage.Backend,
        record: storage.StudyRecord,
        study: optuna.Study,
        trial: optuna.Trial,
    ) -> TrialOutcome | None:
        definition = record.definition
        started = time.monotonic()
        state, value, error, epochs = TrialState.FAIL, None, None, 0
        attrs: dict[str, Any] = {}
        try:
            with _Heartbeat(backend, trial._trial_id, self.options.heartbeat_s):
                config = sample_config(trial, definition)
                task = get_task(definition.task, self.options.task_options)
                result = train_trial(
                    config,
                    task,
                    objective=definition.objective.metric,
                    direction=definition.direction,
                    trial=trial,
                    device=self.device,
                    seed=definition.sampler.seed or 0,
                    bf16=self.options.bf16,
                    stop_requested=self._stop.is_set,
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
            log.warning("trial %d interrupted; handing it back for retry", trial.number)
            self._hand_back(backend, study, trial, record)
            return None
        except _DB_ERRORS as exc:
            # Lost the database mid-trial: the trial stays RUNNING and goes stale,
            # and whichever worker sees it first retries it.
            log.warning("storage lost during trial %d: %s", trial.number, _short(exc))
            self._drop_connection()
            return None
        except torch.cuda.OutOfMemoryError as exc:
            error = f"oom: {_short(exc)}"
            torch.cuda.empty_cache()
        except Exception as exc:
            log.exception("trial %d of %s failed", trial.number, record.name)
            error = f"{type(exc).__name__}: {_short(exc)}"
        if error is not None:
            attrs["error"] = error
        try:
            storage.finish_trial(backend, study, trial, state=state, value=value, user_attrs=attrs)
        except _DB_ERRORS as exc:
            log.warning("could not record trial %d: %s", trial.number, _short(exc))
            self._drop_connection()
            return None
        return TrialOutcome(
            study=record.name,
            number=trial.number,
            state=state.name,
            value=value
            if state == TrialState.COMPLETE
            else _last_value(attrs, definition.objective.metric),
            params=dict(trial.params),
            epochs_run=epochs,
            seconds=time.monotonic() - started,
            error=error,
        )

    def _hand_back(
        self,
        backend: storage.Backend,
        study: optuna.Study,
        trial: optuna.Trial,
        record: storage.StudyRecord,
    ) -> None:
        try:
            storage.give_back(
                backend,
                study,
                trial._trial_id,
                reason="interrupted: worker stopped",
                definition=record.definition,
            )
        except _DB_ERRORS as exc:
            log.warning("could not hand back trial %d: %s", trial.number, _short(exc))


def _last_value(attrs: dict[str, Any], metric: str) -> float | None:
    metrics = attrs.get("metrics") or []
    return None if not metrics else metrics[-1].get(metric)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:limit]


def run_worker(
    options: WorkerOptions, *, on_trial: Callable[[TrialOutcome], None] | None = None
) -> WorkerStats:
    """Build a :class:`Worker` and run it to the end."""
    return Worker(options, on_trial=on_trial).run()
