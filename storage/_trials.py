"""The trial life cycle in shared storage: claim, heartbeat, finish, stale, retry.

Budget rule: a study ends with exactly ``n_trials`` finished trials, counting
COMPLETE + PRUNED + FAIL, except FAIL trials that a retry repeats (a trial whose
user attr ``retry_of`` names them). Every trial that counts toward the budget
is created under the study lock, so any number of workers on any number of
hosts agree on what is left.

Every change of a trial's state (claim, finish, give back, stale) also happens
under the study lock, and each one that ends a trial deletes its row in
``lrsearch_trial_runs`` in the same locked transaction. Hence, for anyone
holding the lock:

- a RUNNING trial with a run row belongs to a worker that claimed it; its
  ``heartbeat_at`` (database clock) says whether that worker is alive;
- a RUNNING trial without a run row was asked from Optuna by a claim that died
  before committing (killed process, lost connection): nobody runs it;
- a finished trial without a summary row, or with a run row left over, was
  ended by a process that died between Optuna's commit and ours.

:func:`fail_stale_trials` repairs all three; the last by backfilling.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

from lrsearch.search_space import StudyDefinition
from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._clock import db_now, now_expr
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import BudgetExhaustedError
from lrsearch.storage._lock import study_lock
from lrsearch.storage._studies import StudyRecord, get_study, get_study_conn, list_studies
from lrsearch.storage._tables import trial_results, trial_runs

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 60.0

_optuna_trials = _optuna.trials
_optuna_user_attrs = _optuna.trial_user_attrs
# Optuna's state column is a native enum on PostgreSQL, which does not compare
# with a VARCHAR parameter: compare its text.
_state = sa.cast(_optuna_trials.c.state, sa.String)
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


@dataclass(frozen=True)
class BudgetCounts:
    """How a study's budget stands. ``used`` counts every trial that will count when done."""

    n_trials: int
    total: int
    retried: int
    waiting: int
    running: int
    finished: int
    by_state: dict[str, int] = field(default_factory=dict)
    """Trials per Optuna state (only the states present)."""

    @property
    def used(self) -> int:
        return self.total - self.retried

    @property
    def remaining(self) -> int:
        return max(0, self.n_trials - self.used)

    @property
    def done(self) -> bool:
        """Every trial of the budget has finished (none running or waiting)."""
        return self.finished - self.retried >= self.n_trials and self.running + self.waiting == 0


def budget_counts(conn: Connection, record: StudyRecord) -> BudgetCounts:
    """Count the study's trials by state with two small aggregate queries.

    Both read Optuna's tables only: ``retried`` counts the distinct ``retry_of``
    user attrs, which Optuna writes in the same transaction that creates the
    retry. (Our summary rows may lag behind by a crash; the budget must not.)
    """
    rows = conn.execute(
        sa.select(_state, sa.func.count())
        .where(_optuna_trials.c.study_id == record.study_id)
        .group_by(_state)
    ).all()
    by_state = {str(s): int(n) for s, n in rows}
    retried = conn.execute(
        sa.select(sa.func.count(sa.distinct(_optuna_user_attrs.c.value_json)))
        .select_from(
            _optuna_user_attrs.join(
                _optuna_trials, _optuna_trials.c.trial_id == _optuna_user_attrs.c.trial_id
            )
        )
        .where(
            _optuna_trials.c.study_id == record.study_id,
            _optuna_user_attrs.c.key == "retry_of",
        )
    ).scalar_one()
    return BudgetCounts(
        n_trials=record.n_trials,
        total=sum(by_state.values()),
        retried=int(retried),
        waiting=by_state.get("WAITING", 0),
        running=by_state.get("RUNNING", 0),
        finished=sum(by_state.get(s, 0) for s in _FINISHED),
        by_state=by_state,
    )


def claim_trial(
    backend: Backend, study: optuna.Study, *, worker: str, device: str | None = None
) -> optuna.Trial | None:
    """Ask Optuna for the study's next trial if the study is running and has budget left.

    Waiting trials (enqueued baselines, retries) come first; they were counted
    when they were enqueued. Returns ``None`` when there is nothing to run.
    Sets the trial's ``worker`` and ``device`` user attrs.
    """
    with study_lock(backend, study._study_id) as conn:
        record = get_study_conn(conn, study.study_name)
        if record.state != "running":
            return None
        counts = budget_counts(conn, record)
        if counts.waiting == 0 and counts.remaining == 0:
            return None
        trial = study.ask()
        frozen = backend.optuna_storage.get_trial(trial._trial_id)
        retry_of = frozen.user_attrs.get("retry_of")
        attempt = int(frozen.user_attrs.get("attempt", 0))
        now = db_now(conn)
        conn.execute(
            trial_runs.insert().values(
                trial_id=trial._trial_id,
                study_id=record.study_id,
                number=trial.number,
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
        trial.set_user_attr("worker", worker)
        if device is not None:
            trial.set_user_attr("device", device)
    return trial


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


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _is_retried(conn: Connection, study_id: int, number: int) -> bool:
    """Whether some trial of the study is a retry of trial ``number``."""
    found = conn.execute(
        sa.select(_optuna_user_attrs.c.trial_id)
        .join(_optuna_trials, _optuna_trials.c.trial_id == _optuna_user_attrs.c.trial_id)
        .where(
            _optuna_trials.c.study_id == study_id,
            _optuna_user_attrs.c.key == "retry_of",
            _optuna_user_attrs.c.value_json == json.dumps(number),
        )
        .limit(1)
    ).first()
    return found is not None


def record_result(conn: Connection, frozen: FrozenTrial, *, retried: bool | None = None) -> None:
    """Write the summary row of a finished trial (idempotent) and drop its run row.

    Args:
        conn: A connection holding the study lock (two writers of the same row
            would otherwise race between the existence check and the insert).
        frozen: The finished trial as Optuna stores it.
        retried: Whether a retry repeats this trial; ``None`` looks it up.
    """
    run = conn.execute(
        sa.select(trial_runs).where(trial_runs.c.trial_id == frozen._trial_id)
    ).first()
    runm = run._mapping if run is not None else {}
    study_id = int(runm["study_id"]) if runm else _study_id_of(conn, frozen._trial_id)
    if retried is None:
        retried = frozen.state == TrialState.FAIL and _is_retried(conn, study_id, frozen.number)
    params = frozen.params
    now = db_now(conn)
    started = runm.get("started_at")
    epochs = frozen.user_attrs.get("epochs_run")
    if epochs is None:
        epochs = len(frozen.intermediate_values)
    row = {
        "trial_id": frozen._trial_id,
        "study_id": study_id,
        "number": frozen.number,
        "state": frozen.state.name,
        "value": _num(frozen.value) if frozen.values else None,
        "schedule": params.get("schedule"),
        "learning_rate": _num(params.get("learning_rate")),
        "batch_size": params.get("batch_size"),
        "dropout": _num(params.get("dropout")),
        "weight_init": params.get("weight_init"),
        "warmup_epochs": params.get("warmup_epochs", 0),
        "epochs_run": int(epochs),
        "params": json.dumps(params),
        "error": frozen.user_attrs.get("error"),
        "worker": frozen.user_attrs.get("worker", runm.get("worker")),
        "device": frozen.user_attrs.get("device", runm.get("device")),
        "started_at": started,
        "finished_at": now,
        "duration_s": (now - started) if started is not None else None,
        "attempt": int(frozen.user_attrs.get("attempt", 0)),
        "retry_of": frozen.user_attrs.get("retry_of"),
        "retried": retried,
    }
    exists = conn.execute(
        sa.select(trial_results.c.trial_id).where(trial_results.c.trial_id == frozen._trial_id)
    ).first()
    if exists is None:
        conn.execute(trial_results.insert().values(**row))
    else:
        conn.execute(
            trial_results.update().where(trial_results.c.trial_id == frozen._trial_id).values(**row)
        )
    conn.execute(trial_runs.delete().where(trial_runs.c.trial_id == frozen._trial_id))


def _study_id_of(conn: Connection, trial_id: int) -> int:
    return int(
        conn.execute(
            sa.select(_optuna_trials.c.study_id).where(_optuna_trials.c.trial_id == trial_id)
        ).scalar_one()
    )


def _has_run_row(conn: Connection, trial_id: int) -> bool:
    return (
        conn.execute(
            sa.select(trial_runs.c.trial_id).where(trial_runs.c.trial_id == trial_id)
        ).first()
        is not None
    )


def finish_trial(
    backend: Backend,
    study: optuna.Study,
    trial: optuna.Trial,
    *,
    state: TrialState,
    value: float | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> FrozenTrial | None:
    """Set final user attrs, tell Optuna, and write the summary row, under the study lock.

    Safe to call again after a database error: a tell that was committed but
    not acknowledged is recognised by the run row that is still there.

    Returns:
        The finished trial, or ``None`` when someone else had already ended it
        (failed as stale, given back): then nothing of this outcome is recorded.
    """
    attrs = dict(user_attrs or {})
    values = None if value is None or state != TrialState.COMPLETE else value
    optuna_storage = backend.optuna_storage
    with study_lock(backend, study._study_id) as conn:
        try:
            for key, val in attrs.items():
                trial.set_user_attr(key, val)
            study.tell(trial, values, state=state, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # ended meanwhile: by us (unacknowledged commit) or by a sweep; see below
        frozen = optuna_storage.get_trial(trial._trial_id)
        if _has_run_row(conn, trial._trial_id):
            # Nobody else ended it (they would have deleted the run row with the
            # lock held), so this state is ours, or a crashed sweep's; record it.
            record_result(conn, frozen)
        ours = frozen.state == state and frozen.user_attrs.get("error") == attrs.get("error")
        return frozen if ours else None


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
        return _fail_and_retry(
            backend, conn, study, trial_id, reason, definition.budget.max_retries
        )


def _fail_and_retry(
    backend: Backend,
    conn: Connection,
    study: optuna.Study,
    trial_id: int,
    reason: str,
    max_retries: int,
) -> bool:
    optuna_storage = backend.optuna_storage
    try:
        if optuna_storage.get_trial(trial_id).state != TrialState.RUNNING:
            return False
        optuna_storage.set_trial_user_attr(trial_id, "error", reason)
        if not optuna_storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    failed = optuna_storage.get_trial(trial_id)
    attempt = int(failed.user_attrs.get("attempt", 0))
    # A trial killed before its parameters were sampled is retried too (with
    # none fixed): it was claimed from the budget, so its retry takes its place.
    will_retry = attempt < max_retries
    if will_retry:
        study.enqueue_trial(
            dict(failed.params), user_attrs={"retry_of": failed.number, "attempt": attempt + 1}
        )
    record_result(conn, failed, retried=will_retry)
    if not will_retry:
        log.warning("trial %d failed (%s); no retries left", failed.number, reason)
        return True
    log.warning(
        "trial %d failed (%s); retrying it as attempt %d", failed.number, reason, attempt + 1
    )
    return True


def _stale_trials(
    conn: Connection, backend: Backend, study_id: int, grace_s: float, heartbeats_valid: bool
) -> list[tuple[int, int, str]]:
    """RUNNING trials nobody runs: ``(trial_id, number, why)``, oldest first."""
    now = now_expr(backend.dialect)
    found: list[tuple[int, int, str]] = []
    if heartbeats_valid:
        silent = conn.execute(
            sa.select(trial_runs.c.trial_id, trial_runs.c.number)
            .join(_optuna_trials, _optuna_trials.c.trial_id == trial_runs.c.trial_id)
            .where(
                trial_runs.c.study_id == study_id,
                _state == "RUNNING",
                trial_runs.c.heartbeat_at < now - grace_s,
            )
        ).all()
        found += [(int(t), int(n), f"stale: no heartbeat for {grace_s:g} s") for t, n in silent]
    orphans = conn.execute(
        sa.select(_optuna_trials.c.trial_id, _optuna_trials.c.number)
        .outerjoin(trial_runs, trial_runs.c.trial_id == _optuna_trials.c.trial_id)
        .where(
            _optuna_trials.c.study_id == study_id,
            _state == "RUNNING",
            trial_runs.c.trial_id.is_(None),
        )
    ).all()
    found += [(int(t), int(n), "stale: its claim never completed") for t, n in orphans]
    return sorted(found, key=lambda item: item[1])


def _unrecorded_trials(conn: Connection, study_id: int) -> list[int]:
    """Finished trials whose summary row is missing or whose run row is left over."""
    no_summary = (
        sa.select(_optuna_trials.c.trial_id)
        .outerjoin(trial_results, trial_results.c.trial_id == _optuna_trials.c.trial_id)
        .where(
            _optuna_trials.c.study_id == study_id,
            _state.in_(_FINISHED),
            trial_results.c.trial_id.is_(None),
        )
    )
    leftover_run = (
        sa.select(_optuna_trials.c.trial_id)
        .join(trial_runs, trial_runs.c.trial_id == _optuna_trials.c.trial_id)
        .where(_optuna_trials.c.study_id == study_id, _state.in_(_FINISHED))
    )
    return sorted({int(t) for t in conn.execute(sa.union(no_summary, leftover_run)).scalars()})


def fail_stale_trials(
    backend: Backend, study: optuna.Study, record: StudyRecord, *, grace_s: float
) -> list[int]:
    """Fail every running trial whose worker is gone, and retry it; repair summary rows.

    A trial is stale when its heartbeat (database clock) is older than
    ``grace_s``, or when it is RUNNING in Optuna without a run row (its claim
    died halfway). Also backfills the summary rows of trials that finished in
    Optuna but whose worker died before writing the row.

    The check runs first without the lock (two cheap queries, the usual answer
    being "nothing"), then again under the lock before anything is changed, so
    a heartbeat that arrives in between saves its trial.

    Returns:
        The numbers of the trials failed.
    """
    return _sweep(backend, record, grace_s, lambda: study)


def _sweep(
    backend: Backend,
    record: StudyRecord,
    grace_s: float,
    study_handle: Callable[[], optuna.Study],
) -> list[int]:
    with backend.engine.connect() as conn:
        heartbeats_valid = _heartbeats_valid(conn, backend, grace_s)
        suspects = _stale_trials(conn, backend, record.study_id, grace_s, heartbeats_valid)
        unrecorded = _unrecorded_trials(conn, record.study_id)
    failed: list[int] = []
    if not suspects and not unrecorded:
        return failed
    with study_lock(backend, record.study_id) as conn:
        for trial_id, number, reason in _stale_trials(
            conn, backend, record.study_id, grace_s, heartbeats_valid
        ):
            if _fail_and_retry(backend, conn, study_handle(), trial_id, reason, record.max_retries):
                failed.append(number)
        for trial_id in _unrecorded_trials(conn, record.study_id):
            record_result(conn, backend.optuna_storage.get_trial(trial_id))
    return failed


def _heartbeats_valid(conn: Connection, backend: Backend, grace_s: float) -> bool:
    """False while a PostgreSQL server is younger than the grace period.

    A server that was down for a while comes back with every heartbeat older
    than the grace period, although the workers are alive and heartbeat again
    within one interval. Judging staleness before they had a grace period to
    do so would retry every trial in flight.
    """
    if backend.dialect != "postgresql":
        return True
    uptime = conn.execute(
        sa.text("SELECT extract(epoch FROM clock_timestamp() - pg_postmaster_start_time())")
    ).scalar_one()
    return float(uptime) >= grace_s


def grace_s_from_env(env: Mapping[str, str] | None = None) -> float:
    """``LRSEARCH_GRACE_S`` (seconds without heartbeat before a trial is stale), default 60."""
    env = os.environ if env is None else env
    raw = env.get("LRSEARCH_GRACE_S")
    return float(raw) if raw else DEFAULT_GRACE_S


def sweep_stale_trials(
    backend: Backend, *, grace_s: float | None = None, study: str | None = None
) -> dict[str, list[int]]:
    """Fail and retry the stale trials of every running or paused study (or of one).

    For the service or a cron job: workers sweep the studies they work on, but
    when every worker of a study is gone, nobody else would. Cheap when nothing
    is stale: two small queries per study, no lock.

    Args:
        backend: The shared storage.
        grace_s: Seconds without heartbeat before a trial is stale; default
            ``LRSEARCH_GRACE_S`` (60).
        study: Only this study.

    Returns:
        Per study name, the numbers of the trials failed (studies with none are left out).

    Raises:
        StudyNotFoundError: ``study`` does not exist.
    """
    grace = grace_s_from_env() if grace_s is None else grace_s
    if study is not None:
        records = [get_study(backend, study)]
    else:
        records = list_studies(backend, states=("running", "paused"))
    swept: dict[str, list[int]] = {}
    for record in records:
        failed = _sweep(
            backend, record, grace, functools.cache(functools.partial(_handle, backend, record))
        )
        if failed:
            swept[record.name] = failed
    return swept


def _handle(backend: Backend, record: StudyRecord) -> optuna.Study:
    # Enqueueing a retry needs a Study; its sampler is irrelevant (and the
    # service must not build samplers that may need torch).
    return optuna.load_study(
        study_name=record.name,
        storage=backend.optuna_storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=optuna.pruners.NopPruner(),
    )


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
