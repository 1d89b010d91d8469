"""How a study's budget stands, and whether it should go on handing out trials.

Reads only; every decision taken on these counts is taken under the study lock
(see :mod:`lrsearch.storage._claims`), so the answer cannot change between the
count and the decision.

Budget rule: a study ends with exactly ``n_trials`` finished trials, counting
COMPLETE + PRUNED + FAIL, except FAIL trials that a retry repeats (a trial whose
user attr ``retry_of`` names them).

Confirmation trials (user attr ``confirmation_of``, see
:mod:`lrsearch.storage._confirm`) are not search trials: every count above is
over search trials only, and confirmations are counted apart
(``confirm_by_state``, ``confirm_retried``). A study with a confirmation phase
is ``done`` only once its confirmations were enqueued and have all finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results

_optuna_trials = _optuna.trials
_optuna_user_attrs = _optuna.trial_user_attrs
# Optuna's state column is a native enum on PostgreSQL, which does not compare
# with a VARCHAR parameter: compare its text.
STATE_TEXT = sa.cast(_optuna_trials.c.state, sa.String)
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
# Trial user attr of a confirmation trial: the number of the search trial it repeats.
CONFIRMATION_OF = "confirmation_of"
# Optuna study user attr written once the confirmation trials are all enqueued.
CONFIRMATION_MARKER = "confirmation"


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
    """Search trials per Optuna state (only the states present)."""
    confirm_by_state: dict[str, int] = field(default_factory=dict)
    """Confirmation trials per Optuna state (only the states present)."""
    confirm_retried: int = 0
    confirm_pending: bool = False
    """The study has a confirmation phase whose trials are not enqueued yet."""

    @property
    def confirmations(self) -> int:
        return sum(self.confirm_by_state.values()) - self.confirm_retried

    @property
    def search_done(self) -> bool:
        """Every search trial of the budget has finished (none running or waiting)."""
        return self.finished - self.retried >= self.n_trials and self.running + self.waiting == 0

    @property
    def all_waiting(self) -> int:
        """WAITING trials, search and confirmations."""
        return self.waiting + self.confirm_by_state.get("WAITING", 0)

    @property
    def used(self) -> int:
        return self.total - self.retried

    @property
    def remaining(self) -> int:
        return max(0, self.n_trials - self.used)

    @property
    def done(self) -> bool:
        """Every search trial and every confirmation has finished (none running or waiting)."""
        busy = sum(self.confirm_by_state.get(s, 0) for s in ("RUNNING", "WAITING"))
        return self.search_done and not self.confirm_pending and busy == 0


def budget_counts(conn: Connection, record: StudyRecord) -> BudgetCounts:
    """Count the study's trials by state with three small aggregate queries.

    They read Optuna's tables only: ``retried`` counts the distinct ``retry_of``
    user attrs, which Optuna writes in the same transaction that creates the
    retry, and so is ``confirmation_of``. (Our summary rows may lag behind by a
    crash; the budget must not.) A confirmation's retry carries
    ``confirmation_of`` too, so the two kinds never mix.
    """
    conf = _optuna_user_attrs.alias("conf")
    on_conf = sa.and_(conf.c.trial_id == _optuna_trials.c.trial_id, conf.c.key == CONFIRMATION_OF)
    rows = conn.execute(
        sa.select(STATE_TEXT, conf.c.key, sa.func.count())
        .select_from(_optuna_trials.outerjoin(conf, on_conf))
        .where(_optuna_trials.c.study_id == record.study_id)
        .group_by(STATE_TEXT, conf.c.key)
    ).all()
    by_state: dict[str, int] = {}
    confirm_by_state: dict[str, int] = {}
    for state, key, n in rows:
        target = by_state if key is None else confirm_by_state
        target[str(state)] = target.get(str(state), 0) + int(n)
    retry = _optuna_user_attrs.alias("retry")
    retried_rows = conn.execute(
        sa.select(conf.c.key, sa.func.count(sa.distinct(retry.c.value_json)))
        .select_from(
            retry.join(_optuna_trials, _optuna_trials.c.trial_id == retry.c.trial_id).outerjoin(
                conf, on_conf
            )
        )
        .where(_optuna_trials.c.study_id == record.study_id, retry.c.key == "retry_of")
        .group_by(conf.c.key)
    ).all()
    retried = {key: int(n) for key, n in retried_rows}
    pending = False
    spec = record.definition.confirm
    if spec is not None and spec.enabled:
        marker = conn.execute(
            sa.select(_optuna.study_user_attrs.c.key).where(
                _optuna.study_user_attrs.c.study_id == record.study_id,
                _optuna.study_user_attrs.c.key == CONFIRMATION_MARKER,
            )
        ).first()
        pending = marker is None
    return BudgetCounts(
        n_trials=record.n_trials,
        total=sum(by_state.values()),
        retried=retried.get(None, 0),
        waiting=by_state.get("WAITING", 0),
        running=by_state.get("RUNNING", 0),
        finished=sum(by_state.get(s, 0) for s in FINISHED),
        by_state=by_state,
        confirm_by_state=confirm_by_state,
        confirm_retried=sum(n for key, n in retried.items() if key is not None),
        confirm_pending=pending,
    )


def claim_counts(conn: Connection, record: StudyRecord) -> tuple[int, int] | None:
    """What a claim needs to know, from one count over the study's trials, when that suffices.

    ``(waiting, total)``: the study's WAITING trials (search and confirmations)
    and all its trials. ``None`` when ``total`` reaches ``n_trials``: only then
    can the budget be spent or the search be over, and the claim must ask
    :func:`budget_counts`, which joins the user attrs (retries and
    confirmations) of every trial of the study. Below that, the answer of
    :func:`budget_counts` is known without them: ``used`` <= ``total`` <
    ``n_trials`` leaves budget, and ``search_done`` is false (``finished`` <=
    ``total``), so no confirmation phase can be due.
    """
    rows = conn.execute(
        sa.select(STATE_TEXT, sa.func.count())
        .where(_optuna_trials.c.study_id == record.study_id)
        .group_by(STATE_TEXT)
    ).all()
    counts = {str(state): int(n) for state, n in rows}
    total = sum(counts.values())
    if total >= record.n_trials:
        return None
    return counts.get("WAITING", 0), total


def is_search_trial(trial_id: Any) -> Any:
    """SQL condition: the trial with this id is no confirmation (one indexed probe per row)."""
    return ~sa.exists().where(
        _optuna_user_attrs.c.trial_id == trial_id, _optuna_user_attrs.c.key == CONFIRMATION_OF
    )


def error_class(error: str | None) -> str | None:
    """The class of a trial's ``error``: the text before its first colon.

    Only failures of the code a trial runs count (``TaskDataError: ...``,
    ``ValueError: ...``): divergence and CUDA out-of-memory are outcomes of the
    sampled configuration (the next one may be fine), and stale or interrupted
    trials are the workers' fault and are retried. Those give ``None``.
    """
    if not error or ":" not in error:
        return None
    head = error.split(":", 1)[0].strip()
    if head in ("diverged", "oom", "stale", "interrupted") or not head.isidentifier():
        return None
    return head


def failure_streak(conn: Connection, study_id: int, limit: int) -> tuple[int, str | None]:
    """How many of the study's last recorded trials failed with one error class.

    Looks at the ``limit`` most recent summary rows (by trial number, one index
    range scan), skipping retried failures (their retry stands in for them).

    Returns:
        ``(streak, class)``: the length of the run of failures of the newest
        row's error class, and that class (``None`` and 0 when the newest
        row is not such a failure).
    """
    rows = conn.execute(
        sa.select(trial_results.c.state, trial_results.c.error)
        .where(trial_results.c.study_id == study_id, trial_results.c.retried.is_(False))
        .order_by(trial_results.c.number.desc())
        .limit(limit)
    ).all()
    streak, cls = 0, None
    for state, error in rows:
        this = error_class(error) if state == "FAIL" else None
        if this is None or (cls is not None and this != cls):
            break
        cls = this
        streak += 1
    return streak, cls
