"""Handing out trials: claims, heartbeats, fixed configurations, sampler seeds.

Crash consistency. Every trial that counts toward the budget is created under
the study lock, which is held only for the budget check and the creation of
the trial's row (a WAITING trial popped, or a new RUNNING one) together with
its run row. The sampler's work for that trial (``Trial.__init__`` runs the
relative sampling of CMA-ES, GP and multivariate TPE) happens after the lock
is released, so slow samplers do not serialise the workers of a study.

- A claim that dies before committing its run row leaves a RUNNING trial
  without one: the sweep retries it at once ("its claim never completed").
- A claim that dies after committing but before sampling leaves a RUNNING
  trial with a run row whose heartbeat stops: the sweep retries it after the
  grace period, like any dead worker's trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._budget import budget_counts, claim_counts
from lrsearch.storage._clock import db_now, now_expr
from lrsearch.storage._confirm import enqueue_confirmations
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import BudgetExhaustedError
from lrsearch.storage._lock import study_lock
from lrsearch.storage._studies import StudyRecord, read_study_by_id
from lrsearch.storage._tables import trial_runs

# Study system attr counting the seeded samplers built for the study so far.
_SAMPLER_SLOTS = "lrsearch:sampler_slots"


def _pop_or_create(study: optuna.Study, waiting: int) -> tuple[int, bool]:
    """A WAITING trial set RUNNING, or a new RUNNING one: the first half of ``Study.ask``.

    ``waiting`` (counted under the lock) spares the scan of the study's
    trials for a WAITING one in the usual case, where there is none.

    Returns:
        The trial's id, and whether it was a WAITING one.
    """
    if waiting:
        # Optuna caches the trial list per ask; a stale cache would offer popped trials.
        study._thread_local.cached_all_trials = None
        popped = study._pop_waiting_trial_id()
        if popped is not None:
            return popped, True
    return study._storage.create_new_trial(study._study_id), False


def set_trial_user_attrs(
    optuna_storage: optuna.storages.BaseStorage, trial_id: int, attrs: Mapping[str, Any]
) -> None:
    """Set several user attrs of a running trial in one transaction.

    The same checks and upserts as Optuna's ``set_trial_user_attr``, once per
    key, but one commit instead of one per key (other storages: one call per key).

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: The trial has finished.
    """
    if not attrs:
        return
    if not isinstance(optuna_storage, optuna.storages.RDBStorage):
        for key, value in attrs.items():
            optuna_storage.set_trial_user_attr(trial_id, key, value)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(optuna_storage.scoped_session, True) as session:
        for key, value in attrs.items():
            optuna_storage._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )


def _run_identity(
    conn: Connection, optuna_storage: optuna.storages.BaseStorage, trial_id: int, popped: bool
) -> tuple[int, int, Any]:
    """The trial's ``(number, attempt, retry_of)`` for its run row.

    A new trial has no user attrs yet: its number is one indexed read, not a
    whole ``get_trial``. A popped (enqueued) one carries ``attempt`` and
    ``retry_of``.
    """
    if popped:
        frozen = optuna_storage.get_trial(trial_id)
        attrs = frozen.user_attrs
        return frozen.number, int(attrs.get("attempt", 0)), attrs.get("retry_of")
    number = conn.execute(
        sa.select(_optuna.trials.c.number).where(_optuna.trials.c.trial_id == trial_id)
    ).scalar_one()
    return int(number), 0, None


def _pop_matching(study: optuna.Study, fixed: Mapping[str, Any]) -> int | None:
    """The oldest WAITING trial whose own fixed values agree with ``fixed``, set RUNNING.

    A waiting trial agrees when none of its fixed parameters contradicts
    ``fixed``; those it leaves open get ``fixed``'s values.
    """
    optuna_storage = study._storage
    waiting = optuna_storage.get_all_trials(
        study._study_id, deepcopy=False, states=(TrialState.WAITING,)
    )
    for frozen in sorted(waiting, key=lambda t: t.number):
        own = dict(frozen.system_attrs.get("fixed_params") or {})
        if any(name in own and own[name] != value for name, value in fixed.items()):
            continue
        if optuna_storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
            optuna_storage.set_trial_system_attr(frozen._trial_id, "fixed_params", {**own, **fixed})
            return frozen._trial_id
    return None


def _create_fixed(study: optuna.Study, fixed: Mapping[str, Any]) -> int:
    trial_id = study._storage.create_new_trial(study._study_id)
    study._storage.set_trial_system_attr(trial_id, "fixed_params", dict(fixed))
    return trial_id


def claim_trial(
    backend: Backend,
    study: optuna.Study,
    *,
    worker: str,
    device: str | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> optuna.Trial | None:
    """Take the study's next trial if the study is running and has budget left.

    Waiting trials (enqueued baselines, retries, confirmations) come first;
    they were counted when they were enqueued. The first claim after the
    search budget is spent enqueues the study's confirmation trials, if it has
    a confirmation phase (:mod:`lrsearch.storage._confirm`). Returns ``None``
    when there is nothing to run.
    Sets the trial's ``worker`` and ``device`` user attrs.

    With ``fixed`` (parameter values, e.g. the batch size of a pack of trials
    trained together), only a trial that will sample those values is taken:
    a waiting trial that agrees with them, else a new trial with them fixed
    (Optuna's ``fixed_params``, as ``enqueue_trial`` sets), which the sampler
    completes.
    """
    optuna_storage = backend.optuna_storage
    with study_lock(backend, study._study_id) as conn:
        record = read_study_by_id(study._study_id, conn=conn)
        if record.state != "running":
            return None
        quick = claim_counts(conn, record)
        if quick is not None:
            # Fewer trials than the budget: budget left, no confirmation due.
            waiting, remaining = quick[0], record.n_trials - quick[1]
        else:
            counts = budget_counts(conn, record)
            waiting, remaining = counts.all_waiting, counts.remaining
            if counts.confirm_pending and counts.search_done:
                # The search is over: its confirmation phase starts (once: the marker).
                waiting += enqueue_confirmations(backend, study, record, conn)
        if waiting == 0 and remaining == 0:
            return None
        if fixed is None:
            trial_id, was_waiting = _pop_or_create(study, waiting)
        else:
            popped = _pop_matching(study, fixed) if waiting else None
            if popped is None and remaining == 0:
                return None
            was_waiting = popped is not None
            trial_id = popped if popped is not None else _create_fixed(study, fixed)
        number, attempt, retry_of = _run_identity(conn, optuna_storage, trial_id, was_waiting)
        now = db_now(conn)
        conn.execute(
            trial_runs.insert().values(
                trial_id=trial_id,
                study_id=record.study_id,
                number=number,
                worker=worker,
                device=device,
                attempt=attempt,
                retry_of=retry_of,
                started_at=now,
                heartbeat_at=now,
            )
        )
        # Inside the lock: if this fails, the run row is rolled back and the
        # trial is an orphan that the next sweep retries at once.
        attrs = {"worker": worker} if device is None else {"worker": worker, "device": device}
        set_trial_user_attrs(optuna_storage, trial_id, attrs)
    # Sync the trial list once per trial, as ``Study.ask`` does: the sampler's
    # proposals for this trial (and Hyperband's bracket views, which share this
    # cache) read the study's trials once, at the first ``suggest``.
    study._thread_local.cached_all_trials = None
    # Outside the lock: the sampler's relative sampling for this trial.
    return optuna.Trial(study, trial_id)


def heartbeat(backend: Backend, trial_id: int) -> bool:
    """Tell everyone the trial's worker is alive.

    Returns:
        ``False`` when the trial has no run row any more: it was ended by someone
        else (failed as stale, given back), and its worker should abandon it.
    """
    with backend.engine.begin() as conn:
        result = conn.execute(
            trial_runs.update()
            .where(trial_runs.c.trial_id == trial_id)
            .values(heartbeat_at=now_expr(backend.dialect))
        )
        return bool(result.rowcount)


def enqueue_fixed(
    backend: Backend, study: optuna.Study, record: StudyRecord, params: Mapping[str, Any]
) -> None:
    """Enqueue a validated fixed configuration; it counts toward the budget.

    Raises:
        BudgetExhaustedError: Every trial of the budget is already taken.
    """
    with study_lock(backend, record.study_id) as conn:
        counts = budget_counts(conn, record)
        if counts.remaining == 0:
            raise BudgetExhaustedError(
                f"study {record.name!r} has no budget left ({record.n_trials} trials taken)"
            )
        study.enqueue_trial(dict(params), user_attrs={"enqueued": True})


def sampler_slot(backend: Backend, record: StudyRecord) -> int:
    """A number for one seeded sampler of the study: 0, 1, 2... in the order asked for.

    Workers salt a seeded sampler with it (see ``load_optuna_study``'s
    ``seed_salt``), so that no two samplers of a study draw the same sequence,
    on any host, while a study run by one worker replays run to run (its only
    sampler is slot 0: the definition's seed unchanged). A worker asks once
    per study and keeps its sampler across reconnects; a restarted worker asks
    again and continues with a fresh sequence instead of repeating one.
    """
    optuna_storage = backend.optuna_storage
    with study_lock(backend, record.study_id):
        attrs = optuna_storage.get_study_system_attrs(record.study_id)
        slot = int(attrs.get(_SAMPLER_SLOTS, 0))
        optuna_storage.set_study_system_attr(record.study_id, _SAMPLER_SLOTS, slot + 1)
    return slot
