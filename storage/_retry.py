"""Failing a trial that did not finish (stale worker, shutdown) and enqueueing its retry.

Crash consistency. Optuna writes on its own engine, so the retry (a WAITING
trial with ``retry_of``) and the failure of the trial it repeats cannot share a
transaction. They are written in the one order that a crash anywhere leaves
repairable, all under the study lock:

1. the retry, unless a trial with ``retry_of`` = this number already exists;
2. the ``error`` attr and the FAIL state of the trial;
3. the summary row (see :mod:`lrsearch.storage._record`), dropping the run row.

A crash after 1 leaves the trial RUNNING with its retry already queued: the
budget already counts the pair as one (``retried`` counts ``retry_of``), the
trial goes stale, and the sweep comes back here, finds the retry and does not
enqueue a second. A crash after 2 leaves a FAIL without a summary row, which
the sweep backfills. No order of crashes loses a retry or adds one.
"""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

from lrsearch.search_space import StudyDefinition
from lrsearch.storage._engine import Backend
from lrsearch.storage._lock import study_lock
from lrsearch.storage._record import is_retried, record_result

log = logging.getLogger("lrsearch.storage._trials")


def _enqueue_retry(study: optuna.Study, failed: FrozenTrial, attempt: int) -> None:
    # A trial killed before its parameters were sampled is retried too (with
    # none fixed): it was claimed from the budget, so its retry takes its place.
    attrs: dict[str, object] = {"retry_of": failed.number, "attempt": attempt + 1}
    if "confirmation_of" in failed.user_attrs:  # a confirmation's retry is a confirmation
        attrs["confirmation_of"] = failed.user_attrs["confirmation_of"]
    study.enqueue_trial(dict(failed.params), user_attrs=attrs)


def _mark_failed(optuna_storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> bool:
    optuna_storage.set_trial_user_attr(trial_id, "error", reason)
    return bool(optuna_storage.set_trial_state_values(trial_id, state=TrialState.FAIL))


def fail_and_retry(
    backend: Backend,
    conn: Connection,
    study: optuna.Study,
    trial_id: int,
    reason: str,
    max_retries: int,
) -> bool:
    """Retry (if attempts are left), then fail, then record a RUNNING trial.

    Args:
        backend: The shared storage.
        conn: A connection holding the study lock.
        study: The trial's study (any sampler; only ``enqueue_trial`` is used).
        trial_id: Optuna's id of the trial.
        reason: Its ``error`` attr, e.g. ``stale: no heartbeat for 60 s``.
        max_retries: Attempts after the first one.

    Returns:
        ``False`` when the trial was not RUNNING (someone finished it meanwhile).
    """
    optuna_storage = backend.optuna_storage
    trial = optuna_storage.get_trial(trial_id)
    if trial.state != TrialState.RUNNING:
        return False
    attempt = int(trial.user_attrs.get("attempt", 0))
    will_retry = attempt < max_retries
    if will_retry and not is_retried(conn, study._study_id, trial.number):
        _enqueue_retry(study, trial, attempt)
    try:
        if not _mark_failed(optuna_storage, trial_id, reason):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    failed = optuna_storage.get_trial(trial_id)
    record_result(conn, failed)
    if will_retry:
        log.warning(
            "trial %d failed (%s); retrying it as attempt %d", failed.number, reason, attempt + 1
        )
    else:
        log.warning("trial %d failed (%s); no retries left", failed.number, reason)
    return True


def give_back(
    backend: Backend,
    study: optuna.Study,
    trial_id: int,
    *,
    reason: str,
    definition: StudyDefinition,
) -> bool:
    """Fail a trial that did not finish (stale worker, shutdown) and retry it if allowed.

    Returns ``False`` if someone else finished the trial meanwhile.
    """
    with study_lock(backend, study._study_id) as conn:
        return fail_and_retry(backend, conn, study, trial_id, reason, definition.budget.max_retries)
