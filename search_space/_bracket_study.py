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
``_BracketStudy``, but for two things. It has no attribute guard (Optuna's
view checks every attribute read against a list of allowed names; TPE reads
``study.direction`` once per trial of the history for every ``suggest``, and
at 9,000 trials that check alone was a tenth of a trial's time). And it
answers samplers from the study's per-trial snapshot of the trial list.

Samplers read the study through ``_get_trials``, which Optuna's view does not
filter; Optuna builds a fresh view for every ``suggest``, and TPE (with
``constant_liar``, its default) asks for no cache, so it re-reads every trial
of the study from the storage on every ``suggest``: about ten times per trial
with lrsearch's space, each a list of the whole study. This view answers
``_get_trials`` from the study's own per-trial cache, which ``ask``, ``tell``
and lrsearch's claim reset: the history is read once per trial, at its first
``suggest``. A proposal can differ from Optuna's only when another worker
starts or finishes a trial during the few milliseconds between the first and
the last ``suggest`` of this one. The pruner's ``get_trials`` never uses the
cache and reads the storage each time, as before.
"""

from __future__ import annotations

from collections.abc import Container

import optuna
from optuna.pruners import HyperbandPruner
from optuna.trial import FrozenTrial, TrialState

from lrsearch.search_space import _tpe_split

# Numbers of trials whose bracket is kept, per study name; beyond, recomputed.
_LIMIT = 1_000_000


class _BracketStudy(optuna.study.Study):
    """The trials of one Hyperband bracket: Optuna's class of that name, memoised."""

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
        # The study's own per-trial cache of its trial list (reset by ``ask``,
        # ``tell`` and lrsearch's claim): samplers read the history once per
        # trial through every view, instead of once per ``suggest``.
        self._thread_local = study._thread_local
        self._stop_flag = False
        self._study = study
        self._bracket_id = bracket_id
        self._brackets = brackets

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        # Samplers call this (TPE with ``constant_liar``, Optuna's default, asks
        # for no cache on every ``suggest``): one snapshot of the study per trial.
        return super()._get_trials(deepcopy=deepcopy, states=states, use_cache=True)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        # The pruner's read: always from the storage, never the per-trial snapshot.
        trials = optuna.study.Study._get_trials(self, deepcopy=deepcopy, states=states)
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


_tpe_split.install(_BracketStudy)
