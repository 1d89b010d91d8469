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

The split itself, for lrsearch's view of a single-objective study, is
:func:`_split_with_keys`: Optuna's split, but each finished trial's class
(infeasible, complete, pruned) and sort key are computed once per study and
kept, since a finished trial cannot change. A pruned trial's key is its last
step and value, which Optuna otherwise recomputes for every pruned trial of
the study on every split. Running trials are classified afresh each time.
"""

from __future__ import annotations

import operator
import threading
import weakref
from collections.abc import Callable
from typing import Any

from optuna.samplers._tpe import sampler as _tpe_sampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

_Split = tuple[list[FrozenTrial], list[FrozenTrial]]
# A finished trial's place in the split: 0 infeasible, 1 complete, 2 pruned; its sort key.
_Key = tuple[int, Any]
_INFEASIBLE, _COMPLETE, _PRUNED = 0, 1, 2
_by_number = operator.attrgetter("_number")

# Per study (its per-trial cache object, shared by every view of it): trial id -> key.
_keys: weakref.WeakKeyDictionary[object, dict[int, _Key]] = weakref.WeakKeyDictionary()
_keys_lock = threading.Lock()


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
        key = (study._study_id, n_below, tuple(map(_by_number, trials)))
        if _memo.snapshot is snapshot and _memo.key == key and _memo.answer is not None:
            return _memo.answer
        if len(study.directions) == 1:
            answer = _split_with_keys(study, trials, n_below, _keys_of(study))
        else:
            answer = original(study, trials, n_below)
        _memo.snapshot, _memo.key, _memo.answer = snapshot, key, answer
        return answer

    _tpe_sampler._split_trials = split_trials
    _installed = split_trials


def clear() -> None:
    """Forget the memo (tests)."""
    _memo.snapshot = _memo.key = _memo.answer = None


def _keys_of(study: Any) -> dict[int, _Key]:
    with _keys_lock:
        keys = _keys.get(study._thread_local)
        if keys is None:
            keys = _keys[study._thread_local] = {}
        return keys


def _key(trial: FrozenTrial, study: Study) -> _Key:
    score = _tpe_sampler._get_infeasible_trial_score(trial)
    if score > 0:
        return _INFEASIBLE, score
    if trial.state == TrialState.COMPLETE:
        return _COMPLETE, None
    if trial.state == TrialState.PRUNED:
        return _PRUNED, _tpe_sampler._get_pruned_trial_score(trial, study)
    raise AssertionError(f"TPE split a trial in state {trial.state.name}")


def _split_with_keys(
    study: Study, trials: list[FrozenTrial], n_below: int, keys: dict[int, _Key]
) -> _Split:
    """Optuna's ``_split_trials`` for one objective, with finished trials' keys kept in ``keys``.

    The same buckets in the same order as Optuna's, the same stable sorts (by
    value, by pruned score, by infeasibility), hence the same lists.
    """
    complete: list[FrozenTrial] = []
    pruned: list[FrozenTrial] = []
    pruned_scores: list[Any] = []
    running: list[FrozenTrial] = []
    infeasible: list[FrozenTrial] = []
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            running.append(trial)
            continue
        found = keys.get(trial._trial_id)
        if found is None:
            found = keys[trial._trial_id] = _key(trial, study)
        kind, score = found
        if kind == _COMPLETE:
            complete.append(trial)
        elif kind == _PRUNED:
            pruned.append(trial)
            pruned_scores.append(score)
        else:
            infeasible.append(trial)
    below_complete, above_complete = _tpe_sampler._split_complete_trials(complete, study, n_below)
    n_below = max(0, n_below - len(below_complete))
    order = sorted(range(len(pruned)), key=pruned_scores.__getitem__)
    cut = min(n_below, len(pruned))
    below_pruned = [pruned[i] for i in order[:cut]]
    above_pruned = [pruned[i] for i in order[cut:]]
    n_below = max(0, n_below - len(below_pruned))
    below_infeasible, above_infeasible = _tpe_sampler._split_infeasible_trials(infeasible, n_below)
    below = below_complete + below_pruned + below_infeasible
    above = above_complete + above_pruned + above_infeasible + running
    below.sort(key=_by_number)
    above.sort(key=_by_number)
    return below, above
