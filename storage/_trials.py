"""The trial life cycle in shared storage, one module per step; this names them all.

=====================  ===============================================
``_budget``            counts, the budget rule, the failure streak
``_claims``            claim (lock only for the budget and the row), heartbeat,
                       fixed configurations, sampler slots
``_finish``            tell + summary row; a study failing in a row stops
``_retry``             give back / stale: retry first, then fail
``_record``            the summary row, ``retried`` read, never inferred
``_stale``             the sweep: stale trials, orphans, lost rows
=====================  ===============================================

Each module that changes state across processes opens with its own
crash-consistency rules. The common ground: every change of a trial's state
happens under the study lock (:mod:`lrsearch.storage._lock`); Optuna writes on
its own engine, so no step relies on two writes sharing a transaction; each
step is ordered so that a crash between any two writes leaves a state the
sweep recognises and completes.

Built-in workers and the REST trial protocol share these functions; there is
no second implementation of the life cycle.
"""

from __future__ import annotations

from lrsearch.storage._budget import BudgetCounts, budget_counts
from lrsearch.storage._claims import (
    claim_trial,
    enqueue_fixed,
    heartbeat,
    sampler_slot,
    set_trial_user_attrs,
)
from lrsearch.storage._finish import finish_trial
from lrsearch.storage._record import record_result
from lrsearch.storage._retry import give_back
from lrsearch.storage._settings import DEFAULT_GRACE_S
from lrsearch.storage._stale import (
    fail_stale_trials,
    grace_s_from_env,
    sweep_stale_trials,
)

__all__ = [
    "DEFAULT_GRACE_S",
    "BudgetCounts",
    "budget_counts",
    "claim_trial",
    "enqueue_fixed",
    "fail_stale_trials",
    "finish_trial",
    "give_back",
    "grace_s_from_env",
    "heartbeat",
    "record_result",
    "sampler_slot",
    "set_trial_user_attrs",
    "sweep_stale_trials",
]
