"""Hyperband's per-bracket view of a study, with each trial's bracket computed once.

Optuna's ``HyperbandPruner._create_bracket_study`` returns a study whose
``get_trials`` keeps the trials of one bracket; it recomputes the bracket of
every trial of the study on every call (a CRC-32 of ``"{study_name}_{number}"``
through a study object that checks each attribute access). Successive halving
calls it each time it judges a trial, so on a study of 10,000 trials that is
10,000 bracket computations per judgement.

A trial's bracket depends only on the study's name, the trial's number and the
bracket budgets, which are fixed once the pruner is initialised: this view
computes it once per trial and keeps it. Everything else is Optuna's
``_BracketStudy``, attribute restrictions included.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import optuna
from optuna.pruners import HyperbandPruner
from optuna.study.study import _ThreadLocalStudyAttribute
from optuna.trial import FrozenTrial, TrialState

# Numbers of trials whose bracket is kept, per study name; beyond, recomputed.
_LIMIT = 1_000_000


class _BracketStudy(optuna.study.Study):
    """The trials of one Hyperband bracket: Optuna's class of that name, memoised."""

    _VALID_ATTRS = (
        "get_trials",
        "_get_trials",
        "directions",
        "direction",
        "_directions",
        "_storage",
        "_study_id",
        "pruner",
        "study_name",
        "_bracket_id",
        "sampler",
        "trials",
        "_is_multi_objective",
        "stop",
        "_study",
        "_thread_local",
        "_brackets",
    )

    def __init__(
        self,
        study: optuna.study.Study,
        pruner: HyperbandPruner,
        bracket_id: int,
        brackets: dict[int, int],
    ) -> None:
        # Study.__init__ without its two storage reads: the name, id and
        # directions are the study's own, which cannot change.
        self.study_name = study.study_name
        self._study_id = study._study_id
        self._storage = study._storage
        self._directions = list(study._directions)
        self.sampler = study.sampler
        self.pruner = pruner
        self._thread_local = _ThreadLocalStudyAttribute()
        self._stop_flag = False
        self._study = study
        self._bracket_id = bracket_id
        self._brackets = brackets

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = super()._get_trials(deepcopy=deepcopy, states=states)
        pruner = self.pruner
        assert isinstance(pruner, HyperbandPruner)
        if not pruner._pruners:
            # Not initialised: every trial is in bracket 0 for now, so keep nothing.
            return [t for t in trials if pruner._get_bracket_id(self, t) == self._bracket_id]
        brackets, wanted = self._brackets, self._bracket_id
        if len(brackets) > _LIMIT:
            brackets.clear()
        out = []
        for t in trials:
            bracket = brackets.get(t.number)
            if bracket is None:
                bracket = brackets[t.number] = pruner._get_bracket_id(self, t)
            if bracket == wanted:
                out.append(t)
        return out

    def stop(self) -> None:
        # ``stop`` stops the original study's optimisation loop, as in Optuna.
        self._study.stop()

    def __getattribute__(self, attr_name: str) -> Any:
        if attr_name not in _BracketStudy._VALID_ATTRS:
            raise AttributeError(f"_BracketStudy does not have attribute of '{attr_name}'")
        return object.__getattribute__(self, attr_name)


def bracket_study(
    study: optuna.study.Study, pruner: HyperbandPruner, bracket_id: int, brackets: dict[int, int]
) -> optuna.study.Study:
    """The view of ``study`` that ``pruner`` (and samplers) see for ``bracket_id``.

    Args:
        study: The study.
        pruner: Its Hyperband pruner.
        bracket_id: The bracket.
        brackets: The pruner's memo of trial number to bracket for this study,
            filled as trials are seen.
    """
    return _BracketStudy(study, pruner, bracket_id, brackets)
