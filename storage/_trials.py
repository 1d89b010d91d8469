"""The trial life cycle in shared storage: claim, heartbeat, finish, stale, retry.

Budget rule: a study ends with exactly ``n_trials`` finished trials, counting
COMPLETE + PRUNED + FAIL, except FAIL trials that a retry repeats. Every trial
that counts toward the budget is created under the study lock, so any number
of workers on any number of hosts agree on what is left.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

from search_space import StudyDefinition
from storage._clock import db_now, now_expr
from storage._engine import Backend
from storage._errors import BudgetExhaustedError
from storage._lock import study_lock
from storage._studies import StudyRecord, get_study_conn
from storage._tables import trial_results, trial_runs

log = logging.getLogger(__name__)

_optuna_trials = sa.table(
    "trials",
    sa.column("trial_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("study_id", sa.Integer),
    # Optuna stores the state as a native enum on PostgreSQL; comparing it with a
    # VARCHAR parameter fails there, so declare the same enum type.
    sa.column(
        "state",
        sa.Enum("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING", name="trialstate"),
    ),
)


@dataclass(frozen=True)
class BudgetCounts:
    """How a study's budget stands. ``used`` counts every trial that will count when done."""

    n_trials: int
    total: int
    retried: int
    waiting: int
    running: int
    finished: int

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
    """Count the study's trials by state with two small aggregate queries."""
    rows = conn.execute(
        sa.select(_optuna_trials.c.state, sa.func.count())
        .where(_optuna_trials.c.study_id == record.study_id)
        .group_by(_optuna_trials.c.state)
    ).all()
    by_state = {str(s): int(n) for s, n in rows}
    retried = conn.execute(
        sa.select(sa.func.count())
        .select_from(trial_results)
        .where(trial_results.c.study_id == record.study_id, trial_results.c.retried.is_(True))
    ).scalar_one()
    return BudgetCounts(
        n_trials=record.n_trials,
        total=sum(by_state.values()),
        retried=int(retried),
        waiting=by_state.get("WAITING", 0),
        running=by_state.get("RUNNING", 0),
        finished=sum(by_state.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL")),
    )


def claim_trial(
    backend: Backend, study: optuna.Study, *, worker: str, device: str | None = None
) -> optuna.Trial | None:
    """Ask Optuna for the study's next trial if the study is running and has budget left.

    Waiting trials (enqueued baselines, retries) come first; they were counted
    when they were enqueued. Returns ``None`` when there is nothing to run.
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
    trial.set_user_attr("worker", worker)
    if device is not None:
        trial.set_user_attr("device", device)
    return trial


def heartbeat(backend: Backend, trial_id: int) -> None:
    """Tell everyone the trial's worker is alive."""
    with backend.engine.begin() as conn:
        conn.execute(
            trial_runs.update()
            .where(trial_runs.c.trial_id == trial_id)
            .values(heartbeat_at=now_expr(backend.dialect))
        )


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def record_result(conn: Connection, frozen: FrozenTrial, *, retried: bool = False) -> None:
    """Write the summary row of a finished trial (idempotent)."""
    run = conn.execute(
        sa.select(trial_runs).where(trial_runs.c.trial_id == frozen._trial_id)
    ).first()
    runm = run._mapping if run is not None else {}
    params = frozen.params
    now = db_now(conn)
    started = runm.get("started_at")
    epochs = frozen.user_attrs.get("epochs_run")
    if epochs is None:
        epochs = len(frozen.intermediate_values)
    row = {
        "trial_id": frozen._trial_id,
        "study_id": int(runm["study_id"]) if runm else _study_id_of(conn, frozen._trial_id),
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


def finish_trial(
    backend: Backend,
    study: optuna.Study,
    trial: optuna.Trial,
    *,
    state: TrialState,
    value: float | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> FrozenTrial:
    """Set final user attrs, tell Optuna, and write the summary row."""
    for key, val in (user_attrs or {}).items():
        trial.set_user_attr(key, val)
    values = None if value is None or state != TrialState.COMPLETE else value
    frozen = study.tell(trial, values, state=state, skip_if_finished=True)
    with backend.engine.begin() as conn:
        record_result(conn, backend.optuna_storage.get_trial(frozen._trial_id))
    return frozen


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
    storage = backend.optuna_storage
    try:
        storage.set_trial_user_attr(trial_id, "error", reason)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    failed = storage.get_trial(trial_id)
    attempt = int(failed.user_attrs.get("attempt", 0))
    will_retry = attempt < max_retries and bool(failed.params)
    if will_retry:
        study.enqueue_trial(
            failed.params, user_attrs={"retry_of": failed.number, "attempt": attempt + 1}
        )
    record_result(conn, failed, retried=will_retry)
    if not will_retry:
        log.warning("trial %d failed (%s); no retries left", failed.number, reason)
        return True
    log.warning(
        "trial %d failed (%s); retrying it as attempt %d", failed.number, reason, attempt + 1
    )
    return True


def fail_stale_trials(
    backend: Backend, study: optuna.Study, record: StudyRecord, *, grace_s: float
) -> list[int]:
    """Fail every running trial whose heartbeat is older than ``grace_s``; retry them.

    Also backfills summary rows of trials that finished in Optuna but whose
    worker died before writing the row. Returns the numbers of the failed trials.
    """
    now = now_expr(backend.dialect)
    stale_q = (
        sa.select(trial_runs.c.trial_id, trial_runs.c.number)
        .join(_optuna_trials, _optuna_trials.c.trial_id == trial_runs.c.trial_id)
        .where(
            trial_runs.c.study_id == record.study_id,
            _optuna_trials.c.state == "RUNNING",
            trial_runs.c.heartbeat_at < now - grace_s,
        )
    )
    orphan_q = (
        sa.select(_optuna_trials.c.trial_id)
        .outerjoin(trial_results, trial_results.c.trial_id == _optuna_trials.c.trial_id)
        .where(
            _optuna_trials.c.study_id == record.study_id,
            _optuna_trials.c.state.in_(("COMPLETE", "PRUNED", "FAIL")),
            trial_results.c.trial_id.is_(None),
        )
    )
    with backend.engine.connect() as conn:
        stale = conn.execute(stale_q).all()
        orphans = conn.execute(orphan_q).scalars().all()
    failed: list[int] = []
    if stale:
        with study_lock(backend, record.study_id) as conn:
            for trial_id, number in stale:
                reason = f"stale: no heartbeat for {grace_s:g} s"
                if _fail_and_retry(backend, conn, study, trial_id, reason, record.max_retries):
                    failed.append(int(number))
    if orphans:
        with backend.engine.begin() as conn:
            for trial_id in orphans:
                record_result(conn, backend.optuna_storage.get_trial(int(trial_id)))
    return failed


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
