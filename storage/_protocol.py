"""The trial protocol's storage side: trials run by a client's own training code.

A client claims a trial, reports an objective every epoch, and completes,
fails or releases it, over REST. Every state change goes through the same
life-cycle functions the built-in workers use (:func:`claim_trial`,
:func:`heartbeat`, :func:`finish_trial`, :func:`give_back`); this module adds
only what a stateless request needs: finding the trial by number and checking
the caller's lease.

Lease: the client that claimed a trial is its run row's ``worker``. Only it
may report, heartbeat, complete, fail or release the trial, and only while the
run row exists. A trial failed as stale (no heartbeat for the grace period)
or ended otherwise has no run row any more: the next call gets
:class:`LeaseLostError` and the client must stop that trial.

Idempotence (a client may resend a request whose answer it lost):

- a report for an epoch already reported writes nothing and answers the same
  ``prune``; the pruner's verdict is kept in the ``pruned_at`` user attr, and a
  pruned trial is finished (PRUNED) right away, so a lost answer cannot leave
  it running;
- completing, failing or releasing a trial this client already ended the same
  way answers as the first time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from lrsearch.search_space import TrialConfig, sample_config
from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import InvalidStateError, StorageError
from lrsearch.storage._results import TrialNotFoundError
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_runs
from lrsearch.storage._trials import (
    claim_trial,
    fail_stale_trials,
    finish_trial,
    give_back,
    heartbeat,
)

RELEASE_REASON = "interrupted: released by the client"
"""The ``error`` of a trial its client handed back (it is retried, like a stopped worker's)."""


class ProtocolError(StorageError):
    """Root of the trial-protocol errors."""


class LeaseLostError(ProtocolError):
    """The caller does not hold the trial: another client's, stale, or already ended."""


class NoValueError(ProtocolError):
    """A trial cannot complete without a value: none was given and none was reported."""


@dataclass(frozen=True)
class ClaimedTrial:
    """A trial handed to a client: its Optuna params and the resolved configuration."""

    number: int
    params: dict[str, Any]
    config: TrialConfig
    confirmation_of: int | None = None


@dataclass(frozen=True)
class Finished:
    """How a trial ended, as the protocol reports it."""

    number: int
    state: str
    value: float | None


def claim_for_client(
    backend: Backend,
    study: optuna.Study,
    record: StudyRecord,
    *,
    client_id: str,
    grace_s: float,
) -> ClaimedTrial | None:
    """Claim the study's next trial for ``client_id`` and sample its configuration.

    Stale trials are failed and retried first, so a client that died is
    replaced without waiting for the service's periodic sweep.

    Returns:
        ``None`` when there is nothing to hand out (budget taken, study paused
        or cancelled).

    Raises:
        InvalidStateError: The study's stored definition does not validate.
    """
    if record.definition_problem is not None:
        # A definition this release cannot read: hand out nothing (workers skip it too).
        raise InvalidStateError(
            f"study {record.name!r} cannot run: its definition does not validate "
            f"({record.definition_problem})"
        )
    fail_stale_trials(backend, study, record, grace_s=grace_s)
    trial = claim_trial(backend, study, worker=client_id, device="external")
    if trial is None:
        return None
    config = sample_config(trial, record.definition)
    confirms = trial.user_attrs.get("confirmation_of")
    return ClaimedTrial(
        number=trial.number,
        params=dict(trial.params),
        config=config,
        confirmation_of=None if confirms is None else int(confirms),
    )


def absolute_config(config: TrialConfig) -> dict[str, Any]:
    """``config`` with every schedule value as PyTorch takes it: learning rates, not multipliers.

    The search space samples ``cyclic.max_lr`` and ``cosine.eta_min`` relative
    to the learning rate; ``torch.optim.lr_scheduler`` wants learning rates.
    Factors (``gamma``, ``factor``, ``start_factor``) are factors in PyTorch too.
    """
    out = config.model_dump(mode="json")
    schedule = dict(out["schedule"])
    if "max_lr" in schedule:
        schedule["max_lr"] = schedule["max_lr"] * config.learning_rate
    if "eta_min" in schedule:
        schedule["eta_min"] = schedule["eta_min"] * config.learning_rate
    out["schedule"] = schedule
    return out


def _trial_id(backend: Backend, record: StudyRecord, number: int) -> int:
    with backend.engine.connect() as conn:
        found = conn.execute(
            sa.select(_optuna.trials.c.trial_id).where(
                _optuna.trials.c.study_id == record.study_id,
                _optuna.trials.c.number == number,
            )
        ).scalar_one_or_none()
    if found is None:
        raise TrialNotFoundError(record.name, number)
    return int(found)


def _lease_holder(backend: Backend, trial_id: int) -> str | None:
    with backend.engine.connect() as conn:
        worker = conn.execute(
            sa.select(trial_runs.c.worker).where(trial_runs.c.trial_id == trial_id)
        ).scalar_one_or_none()
    return None if worker is None else str(worker)


def _lost(number: int, why: str) -> LeaseLostError:
    return LeaseLostError(f"trial {number} {why}; stop working on it and claim another")


def _ended_by(frozen: FrozenTrial, client_id: str) -> bool:
    return frozen.state.is_finished() and frozen.user_attrs.get("worker") == client_id


def _beat_as(backend: Backend, trial_id: int, number: int, client_id: str) -> None:
    """Heartbeat the trial (the workers' own :func:`heartbeat`) if ``client_id`` holds it."""
    holder = _lease_holder(backend, trial_id)
    if holder is not None and holder != client_id:
        raise _lost(number, "is held by another client")
    # No run row, or it went between the two statements: someone else ended the trial.
    if holder is None or not heartbeat(backend, trial_id):
        raise _lost(number, "is no longer running (failed as stale, released or finished)")


def check_lease(backend: Backend, record: StudyRecord, number: int, client_id: str) -> None:
    """Heartbeat for ``client_id``'s trial.

    Raises:
        TrialNotFoundError: The study has no such trial.
        LeaseLostError: The caller does not hold the trial (any more).
    """
    _beat_as(backend, _trial_id(backend, record, number), number, client_id)


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise ProtocolError(f"{what} must be a finite number")
    return value


def _reported(backend: Backend, trial_id: int, epoch: int) -> bool:
    with backend.engine.connect() as conn:
        found = conn.execute(
            sa.select(_optuna.intermediate_values.c.step).where(
                _optuna.intermediate_values.c.trial_id == trial_id,
                _optuna.intermediate_values.c.step == epoch,
            )
        ).first()
    return found is not None


def report_epoch(
    backend: Backend,
    study: optuna.Study,
    record: StudyRecord,
    number: int,
    *,
    client_id: str,
    epoch: int,
    value: float,
    lr: float | None = None,
    metrics: Mapping[str, float] | None = None,
) -> bool:
    """Record the objective of one epoch, as a built-in worker does, and ask the pruner.

    Also a heartbeat. The objective becomes the intermediate value at step
    ``epoch`` (Optuna's ``report``), then the study's pruner judges the trial
    (Optuna's ``should_prune``). ``lr`` and ``metrics`` are kept per epoch in
    a system attr and become the ``lr_curve`` and ``metrics`` user attrs when
    the trial ends, as a built-in worker writes them. When the pruner says
    stop, the trial is finished PRUNED here.

    Returns:
        Whether the client must stop this trial (pruned).

    Raises:
        TrialNotFoundError: The study has no such trial.
        LeaseLostError: The caller does not hold the trial (any more).
    """
    trial_id = _trial_id(backend, record, number)
    storage = backend.optuna_storage
    if _reported(backend, trial_id, epoch):
        # A resent report: same answer, nothing written twice.
        frozen = storage.get_trial(trial_id)
        if not _ended_by(frozen, client_id):
            _beat_as(backend, trial_id, number, client_id)
        return frozen.user_attrs.get("pruned_at") == epoch
    _beat_as(backend, trial_id, number, client_id)
    row: dict[str, Any] = {"epoch": epoch, **dict(metrics or {})}
    row[record.definition.objective.metric] = value
    if lr is not None:
        row["lr"] = lr
    try:
        # What optuna.Trial.report and should_prune do, without building a
        # Trial (whose constructor runs the sampler over the whole study).
        storage.set_trial_intermediate_value(trial_id, epoch, value)
        storage.set_trial_system_attr(trial_id, f"{_EPOCH_ATTR}{epoch}", row)
        prune = study.pruner.prune(study, storage.get_trial(trial_id))
    except optuna.exceptions.UpdateFinishedTrialError:
        raise _lost(number, "is no longer running") from None
    if not prune:
        return False
    _end_now(backend, study, number, trial_id, TrialState.PRUNED, None, {"pruned_at": epoch})
    return True


_EPOCH_ATTR = "lrsearch:epoch:"


def _epoch_attrs(frozen: FrozenTrial) -> dict[str, Any]:
    """``lr_curve``, ``metrics`` and ``epochs_run`` from the per-epoch system attrs."""
    rows = sorted(
        (v for k, v in frozen.system_attrs.items() if k.startswith(_EPOCH_ATTR)),
        key=lambda r: int(r["epoch"]),
    )
    return {
        "lr_curve": [r["lr"] for r in rows if "lr" in r],
        "metrics": rows,
        "epochs_run": len(frozen.intermediate_values),
    }


def _end_now(
    backend: Backend,
    study: optuna.Study,
    number: int,
    trial_id: int,
    state: TrialState,
    value: float | None,
    attrs: Mapping[str, Any],
) -> FrozenTrial:
    frozen = backend.optuna_storage.get_trial(trial_id)
    result = finish_trial(
        backend,
        study,
        optuna.Trial(study, trial_id),
        state=state,
        value=value,
        user_attrs={**_epoch_attrs(frozen), **attrs},
    )
    if result is None:
        raise _lost(number, "was ended elsewhere")
    return result


def _last_value(frozen: FrozenTrial) -> float | None:
    if not frozen.intermediate_values:
        return None
    return frozen.intermediate_values[max(frozen.intermediate_values)]


def _finished(frozen: FrozenTrial) -> Finished:
    value = frozen.value if frozen.state == TrialState.COMPLETE else _last_value(frozen)
    return Finished(number=frozen.number, state=frozen.state.name, value=value)


def _end(
    backend: Backend,
    study: optuna.Study,
    record: StudyRecord,
    number: int,
    client_id: str,
    state: TrialState,
    value: float | None,
    attrs: Mapping[str, Any],
) -> Finished:
    trial_id = _trial_id(backend, record, number)
    frozen = backend.optuna_storage.get_trial(trial_id)
    if _ended_by(frozen, client_id) and frozen.state == state:
        return _finished(frozen)  # a resent request
    _beat_as(backend, trial_id, number, client_id)
    if state == TrialState.COMPLETE and value is None:
        value = _last_value(frozen)
        if value is None:
            raise NoValueError(f"trial {number}: give a value; no epoch was reported")
    return _finished(_end_now(backend, study, number, trial_id, state, value, attrs))


def complete_trial(
    backend: Backend,
    study: optuna.Study,
    record: StudyRecord,
    number: int,
    *,
    client_id: str,
    value: float | None = None,
) -> Finished:
    """Finish the trial COMPLETE with ``value``, by default the last reported one.

    Raises:
        TrialNotFoundError: The study has no such trial.
        LeaseLostError: The caller does not hold the trial (any more).
        NoValueError: No ``value`` and no report to take it from.
    """
    if value is not None:
        _finite(value, "value")
    return _end(backend, study, record, number, client_id, TrialState.COMPLETE, value, {})


def fail_trial(
    backend: Backend,
    study: optuna.Study,
    record: StudyRecord,
    number: int,
    *,
    client_id: str,
    error: str,
) -> Finished:
    """Finish the trial FAIL with ``error`` as its reason; it is not retried.

    Raises:
        TrialNotFoundError: The study has no such trial.
        LeaseLostError: The caller does not hold the trial (any more).
    """
    attrs = {"error": error}
    return _end(backend, study, record, number, client_id, TrialState.FAIL, None, attrs)


def release_trial(
    backend: Backend, study: optuna.Study, record: StudyRecord, number: int, *, client_id: str
) -> None:
    """Hand the trial back: it fails with :data:`RELEASE_REASON` and is retried if allowed.

    Raises:
        TrialNotFoundError: The study has no such trial.
        LeaseLostError: The caller does not hold the trial (any more).
    """
    trial_id = _trial_id(backend, record, number)
    frozen = backend.optuna_storage.get_trial(trial_id)
    if _ended_by(frozen, client_id) and frozen.user_attrs.get("error") == RELEASE_REASON:
        return
    _beat_as(backend, trial_id, number, client_id)
    if not give_back(backend, study, trial_id, reason=RELEASE_REASON, definition=record.definition):
        raise _lost(number, "was ended elsewhere")
