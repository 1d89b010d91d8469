"""TPE's split of the history into good and bad trials, computed once per trial.

With ``multivariate`` and ``constant_liar`` (Optuna's TPE defaults), TPE
splits the whole history into "below" and "above" trials for its relative
proposal and again for every parameter it samples on its own (the schedule's
own parameters, which only some trials have): six times per trial with
lrsearch's space. The split sorts every pruned trial by its last reported
value, so on a study of 9,000 trials it was about a third of a trial's time.

Under Hyperband every ``suggest`` of one trial sees the same per-trial snapshot
of the study (:mod:`lrsearch.search_space._bracket_study`), so the six splits
have the same input and the same answer. :func:`install` wraps Optuna's
module-level ``_split_trials`` with a one-entry memo that answers a repeated
call from the previous answer when, and only when, the study is lrsearch's
bracket view, the view's snapshot is the same list object as before, and the
trials passed are the same trials in the same order with the same
``n_below``. Any other call (plain Optuna's view, a study without Hyperband,
another trial) goes to Optuna's function unchanged.

The split's lists are only read by TPE (it builds its estimators from them),
so handing the same lists to the next ``suggest`` is safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from optuna.samplers._tpe import sampler as _tpe_sampler
from optuna.study import Study
from optuna.trial import FrozenTrial

_Split = tuple[list[FrozenTrial], list[FrozenTrial]]


class _Memo(threading.local):
    snapshot: list[FrozenTrial] | None = None
    key: tuple[Any, ...] | None = None
    answer: _Split | None = None


_memo = _Memo()
_installed: Callable[..., _Split] | None = None


def install(view_type: type[Study]) -> None:
    """Wrap Optuna's ``_split_trials`` once; memoise only for studies of ``view_type``."""
    global _installed
    if _installed is not None:
        return
    original: Callable[..., _Split] = _tpe_sampler._split_trials

    def split_trials(study: Any, trials: list[FrozenTrial], n_below: int) -> _Split:
        if type(study) is not view_type:
            return original(study, trials, n_below)
        snapshot = study._thread_local.cached_all_trials
        if snapshot is None:
            return original(study, trials, n_below)
        key = (study._study_id, n_below, tuple(t.number for t in trials))
        if _memo.snapshot is snapshot and _memo.key == key and _memo.answer is not None:
            return _memo.answer
        answer = original(study, trials, n_below)
        _memo.snapshot, _memo.key, _memo.answer = snapshot, key, answer
        return answer

    _tpe_sampler._split_trials = split_trials
    _installed = split_trials


def clear() -> None:
    """Forget the memo (tests)."""
    _memo.snapshot = _memo.key = _memo.answer = None
