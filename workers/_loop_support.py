"""Pieces of the pull loop: options, outcomes, heartbeats, patient reporting, error helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import optuna
import sqlalchemy as sa
import torch

from lrsearch import search_space, storage
from lrsearch.workers.settings import PackSetting, WorkerSettings

log = logging.getLogger("lrsearch.workers.loop")

T = TypeVar("T")

# Errors meaning "the database is unreachable right now", worth waiting out.
DB_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    optuna.exceptions.StorageInternalError,
    storage.StorageUnavailableError,
)
MAX_BACKOFF_S = 30.0
MAX_IN_TRIAL_BACKOFF_S = 10.0


@dataclass
class WorkerOptions:
    """How one worker process runs. Defaults match ``lrsearch worker``'s.

    Attributes:
        storage_url: SQLAlchemy URL; default ``LRSEARCH_STORAGE``.
        study: Serve only this study, and exit once it is done or cancelled.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        max_trials: Exit after this many finished trials.
        idle_exit: Exit after this many seconds without work.
        poll_interval: Seconds between looks for work when there is none.
        bf16: bfloat16 autocast on CUDA.
        heartbeat_s: Seconds between heartbeats (``LRSEARCH_HEARTBEAT_S``, 10).
        grace_s: Seconds without heartbeat after which a trial is stale
            (``LRSEARCH_GRACE_S``, 60). Keep it several heartbeats long.
        stop_timeout_s: After SIGTERM/SIGINT, the most seconds before the
            worker gives its trial back and exits whatever it is doing
            (``LRSEARCH_STOP_TIMEOUT_S``, 30).
        label: Names this worker in its log lines, e.g. ``gpu3`` under the
            GPU supervisor (``LRSEARCH_WORKER_LABEL``).
        pack: Train up to this many compatible trials of a study fused
            together (``LRSEARCH_PACK``, 1: one at a time; ``auto``: where
            measured to help, see :mod:`lrsearch.workers._pack_auto`); see
            :mod:`lrsearch.workers._pack_loop`.
        task_options: Passed to the task factory.
        install_signal_handlers: Handle SIGTERM/SIGINT (main thread only).
    """

    storage_url: str | None = None
    study: str | None = None
    device: str = "auto"
    max_trials: int | None = None
    idle_exit: float | None = None
    poll_interval: float = 1.0
    bf16: bool = False
    heartbeat_s: float = field(default_factory=lambda: WorkerSettings().heartbeat_s)
    grace_s: float = field(default_factory=lambda: WorkerSettings().grace_s)
    stop_timeout_s: float = field(default_factory=lambda: WorkerSettings().stop_timeout_s)
    label: str | None = field(default_factory=lambda: WorkerSettings().worker_label)
    pack: PackSetting = field(default_factory=lambda: WorkerSettings().pack)
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
    # The search trial this one re-trains with another seed (confirmation phase).
    confirmation_of: int | None = None


@dataclass
class WorkerStats:
    trials: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


def device_label(device: torch.device, env: Mapping[str, str] | None = None) -> str:
    """The device as the machine knows it: ``cuda:3`` for ``cuda:0`` under CUDA_VISIBLE_DEVICES=3.

    Recorded as the trial's ``device`` so that trials name the physical GPU,
    not the process-local index (always ``cuda:0`` under the GPU supervisor).
    """
    if device.type != "cuda":
        return str(device)
    visible = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    index = device.index or 0
    return f"cuda:{ids[index]}" if index < len(ids) else str(device)


class Heartbeat:
    """Background thread for one running trial: heartbeats, and sweeps its study.

    Heartbeats every ``interval``, then calls ``sweep``, which fails the
    study's stale trials at most once per half grace period (see
    :meth:`Worker._sweep_stale`): a dead worker's trial is retried on time even
    while every live worker is busy with a long trial. ``lost`` is set when a
    heartbeat finds that the trial was ended by someone else.
    """

    def __init__(
        self,
        backend: storage.Backend,
        trial_id: int,
        interval: float,
        sweep: Callable[[], None],
        on_db_error: Callable[[], None],
    ) -> None:
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(backend, trial_id, interval, sweep, on_db_error),
            daemon=True,
            name="heartbeat",
        )

    def _run(
        self,
        backend: storage.Backend,
        trial_id: int,
        interval: float,
        sweep: Callable[[], None],
        on_db_error: Callable[[], None],
    ) -> None:
        while not self._stop.wait(interval):
            try:
                if not storage.heartbeat(backend, trial_id):
                    self.lost.set()
                    return
            except DB_ERRORS as exc:
                on_db_error()
                log.warning("heartbeat for trial id %d failed: %s", trial_id, short_error(exc))
                continue
            try:
                sweep()
            except Exception as exc:
                # A failed sweep is retried at the next interval; it must never
                # take the heartbeat down with it.
                log.warning("stale-trial sweep failed: %s", short_error(exc))

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class PatientTrial:
    """An ``optuna.Trial`` whose ``report`` and ``should_prune`` wait out database outages.

    Everything else is delegated. Only what :func:`train_trial` calls is wrapped.
    """

    def __init__(self, trial: optuna.Trial, patiently: Callable[[Callable[[], Any], str], Any]):
        self._trial = trial
        self._patiently = patiently

    def report(self, value: float, step: int) -> None:
        # Optuna caches a reported step only after the write succeeded, so a
        # retried report neither duplicates nor warns.
        self._patiently(lambda: self._trial.report(value, step), f"report epoch {step}")

    def should_prune(self) -> bool:
        return bool(self._patiently(self._trial.should_prune, "should_prune"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


def patiently(
    call: Callable[[], T],
    what: str,
    *,
    stop: threading.Event,
    on_db_error: Callable[[], None],
    until_stop: bool = True,
) -> T:
    """``call()``, retried with backoff while the database is unreachable.

    With ``until_stop``, a stop request ends the waiting (the error is
    raised); otherwise only the stop watchdog does.
    """
    delay = 0.5
    while True:
        try:
            return call()
        except DB_ERRORS as exc:
            on_db_error()
            if until_stop and stop.is_set():
                raise
            log.warning(
                "%s: storage unavailable (%s); retrying in %.1f s", what, short_error(exc), delay
            )
            if until_stop:
                stop.wait(delay)
            else:
                time.sleep(delay)
            delay = min(delay * 2, MAX_IN_TRIAL_BACKOFF_S)


def fail_unrecorded(
    backend: storage.Backend, study: optuna.Study, trial: optuna.Trial, error: str
) -> optuna.trial.FrozenTrial | None:
    """End a trial whose result could not be recorded as FAIL with ``error``, if possible."""
    try:
        return storage.finish_trial(
            backend, study, trial, state=optuna.trial.TrialState.FAIL, user_attrs={"error": error}
        )
    except Exception as exc:
        log.error(
            "trial %d: could not record its failure either (%s); the stale sweep will",
            trial.number,
            short_error(exc),
        )
        return None


def hand_back(
    backend: storage.Backend,
    study: optuna.Study,
    trial: optuna.Trial,
    record: storage.StudyRecord,
    *,
    reason: str,
) -> None:
    """Fail the trial and enqueue its retry; if that fails, the stale sweep retries it."""
    try:
        storage.give_back(
            backend, study, trial._trial_id, reason=reason, definition=record.definition
        )
    except Exception as exc:
        log.warning(
            "could not hand back trial %d (%s); it will be retried once stale",
            trial.number,
            short_error(exc),
        )


def is_cuda_oom(exc: BaseException) -> bool:
    """CUDA out of memory, whether raised as such or as a RuntimeError by cuBLAS/cuDNN."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def last_value(attrs: dict[str, Any], metric: str) -> float | None:
    metrics = attrs.get("metrics") or []
    return None if not metrics else metrics[-1].get(metric)


def short_error(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:limit]


# The constraint key an out-of-memory trial carries (> 0: infeasible).
OOM_CONSTRAINT = "oom"


def infeasible_record(batch_size: Any, device: torch.device, label: str) -> dict[str, Any]:
    """What ran out of memory where: the trial's ``infeasible`` user attr.

    On CUDA the device's name and total memory (in GiB) identify the card, so
    that the same batch size on a bigger card is not ruled out; elsewhere the
    worker's device label stands in and ``memory_gb`` is ``None``.
    """
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        return {
            "batch_size": batch_size,
            "device": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
        }
    return {"batch_size": batch_size, "device": label, "memory_gb": None}


def set_oom_constraint(
    backend: storage.Backend,
    study: optuna.Study,
    trial: optuna.Trial,
    value: float,
    *,
    recheck: bool = True,
) -> None:
    """Record the trial's out-of-memory constraint where the sampler reads it.

    Optuna 5 samplers read constraints from the trial itself
    (``Trial.set_constraint``); ``constraints_func`` is deprecated. Only set
    for samplers that use them: CMA-ES warns on every constrained trial.
    Idempotent, as :func:`patiently` may call it again after an
    unacknowledged commit: ``recheck`` reads the trial first (the first call
    of a trial may skip that read). A trial ended meanwhile (stale) is left alone:
    ``finish_trial`` then reports it as ended elsewhere.
    """
    # TPE (and NSGA-II) learn from infeasible PRUNED trials; GP reads only
    # COMPLETE ones and the other samplers none.
    sampler = search_space.unwrap_sampler(study.sampler)  # behind schedule balancing
    if not isinstance(sampler, (optuna.samplers.TPESampler, optuna.samplers.NSGAIISampler)):
        return
    if recheck and OOM_CONSTRAINT in backend.optuna_storage.get_trial(trial._trial_id).constraints:
        return
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        trial.set_constraint(OOM_CONSTRAINT, value)


@dataclass
class TrialEnd:
    """How a trial's training ended, before it is recorded (see :func:`record_trial`).

    Attributes:
        state: COMPLETE, PRUNED or FAIL.
        value: The objective of a COMPLETE trial.
        error: Its ``error`` user attr (diverged, oom, an exception).
        attrs: The user attrs to store: ``lr_curve``, ``metrics``, ``epochs_run``...
        epochs: Epochs trained.
        oom: It ran out of GPU memory (sets the ``oom`` constraint).
        started: ``time.monotonic()`` when the worker started it.
    """

    state: optuna.trial.TrialState
    value: float | None
    error: str | None
    attrs: dict[str, Any]
    epochs: int
    oom: bool
    started: float


def _write_attrs_first(
    backend: storage.Backend,
    trial: optuna.Trial,
    attrs: dict[str, Any],
    patient: Callable[..., Any],
) -> dict[str, Any]:
    """Write a trial's result attrs in one transaction, before (and outside) the study lock.

    ``finish_trial`` would write each of them in a transaction of its own while
    holding the study lock, which every worker of the study waits for. Only
    ``error`` is left to it (it compares it to tell its own outcome from
    someone else's). A trial ended meanwhile (failed as stale) refuses the
    write, and ``finish_trial`` then finds it ended elsewhere, as before.

    Returns:
        The attrs still to pass to ``finish_trial``.
    """
    early = {key: value for key, value in attrs.items() if key != "error"}
    try:
        patient(
            lambda: storage.set_trial_user_attrs(backend.optuna_storage, trial._trial_id, early),
            f"record trial {trial.number}",
            until_stop=False,
        )
    except Exception as exc:
        # finish_trial writes them the usual way, and reports what is wrong.
        log.debug("trial %d: attrs left to finish_trial: %s", trial.number, short_error(exc))
        return attrs
    return {key: value for key, value in attrs.items() if key == "error"}


def record_trial(
    backend: storage.Backend,
    record: storage.StudyRecord,
    study: optuna.Study,
    trial: optuna.Trial,
    end: TrialEnd,
    *,
    patient: Callable[..., Any],
    where: str,
) -> TrialOutcome | None:
    """Store a trained trial's end (constraint, state, value, user attrs) and say what it was.

    Waits out database outages with ``patient`` (the worker's ``_patiently``).

    Returns:
        ``None`` when the trial was ended elsewhere meanwhile (failed as stale)
        and its result dropped.
    """
    state, value, error, attrs = end.state, end.value, end.error, end.attrs
    if error is not None:
        attrs["error"] = error
    if state != optuna.trial.TrialState.FAIL:
        calls = [0]

        def constrain() -> None:
            calls[0] += 1  # a repeated call may follow an unacknowledged commit
            value = 1.0 if end.oom else 0.0
            set_oom_constraint(backend, study, trial, value, recheck=calls[0] > 1)

        try:
            patient(constrain, f"constrain trial {trial.number}", until_stop=False)
        except Exception as exc:
            # A missing constraint only costs the sampler a hint: go on.
            log.warning("trial %d: constraint not recorded: %s", trial.number, exc)
    final = _write_attrs_first(backend, trial, attrs, patient)
    try:
        finished = patient(
            lambda: storage.finish_trial(
                backend, study, trial, state=state, value=value, user_attrs=final
            ),
            f"record trial {trial.number}",
            until_stop=False,
        )
    except DB_ERRORS as exc:  # pragma: no cover - patient retries until stopped
        log.warning("could not record trial %d: %s", trial.number, short_error(exc))
        return None
    except Exception as exc:
        # Never let one trial's result take the worker down: fail the trial
        # with the reason, or leave it to the stale sweep if even that fails.
        log.exception("could not record trial %d of %s", trial.number, record.name)
        state, value = optuna.trial.TrialState.FAIL, None
        error = f"unrecordable: {type(exc).__name__}: {short_error(exc)}"
        finished = fail_unrecorded(backend, study, trial, error)
    if finished is None:
        log.warning("trial %d was failed as stale elsewhere; its result is dropped", trial.number)
        return None
    # The storage may have ended it otherwise (FAIL: a result it cannot hold).
    state, error = finished.state, finished.user_attrs.get("error", error)
    log.info("study %s trial #%d %s on %s", record.name, trial.number, state.name, where)
    return TrialOutcome(
        study=record.name,
        number=trial.number,
        state=state.name,
        value=value
        if state == optuna.trial.TrialState.COMPLETE
        else last_value(attrs, record.definition.objective.metric),
        params=dict(trial.params),
        epochs_run=end.epochs,
        seconds=time.monotonic() - end.started,
        error=error,
        confirmation_of=finished.user_attrs.get("confirmation_of"),
    )
