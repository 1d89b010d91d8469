"""The successive-halving rungs a running trial has surely completed, kept in memory.

Optuna's ``SuccessiveHalvingPruner`` finds a trial's rung by reading its
system attrs (``completed_rung_0``, ``completed_rung_1``...) from the storage
on every ``should_prune``, then answers False at once when the step is below
that rung's promotion step ``min_resource * eta ** (bracket + rung)``. With 20
reports and at most three promotion steps per trial, most of those reads only
lead to that False.

A floor is a rung the trial has surely reached: after the pruner answered
False at step ``s``, every rung whose promotion step is at most ``s`` is
completed (the pruner wrote it in that call or an earlier one), and rungs are
never taken back. Promotion steps grow with the rung, so a step below the
floor's promotion step is below the trial's actual one: the answer is False,
with no storage read. A missing or stale floor (another process judged the
trial since, a new storage object after a reconnect) only means a lower
floor, never a wrong answer.
"""

from __future__ import annotations

import optuna
from optuna.pruners import HyperbandPruner, SuccessiveHalvingPruner
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

# Running trials a pruner keeps floors for; beyond it they are forgotten (safe).
_LIMIT = 4096


def promotion_step(pruner: SuccessiveHalvingPruner, rung: int) -> int:
    """The step from which ``pruner`` judges a trial at ``rung`` (-1: unknown yet)."""
    min_resource = pruner._min_resource
    if min_resource is None:
        return -1
    rate = pruner._min_early_stopping_rate + rung
    return int(min_resource * pruner._reduction_factor**rate)


class RungFloors:
    """Per running trial of a Hyperband pruner, the rung it has surely completed."""

    def __init__(self) -> None:
        self._floors: dict[tuple[int, int], tuple[BaseStorage, int]] = {}

    def _bracket(
        self, pruner: HyperbandPruner, study: optuna.study.Study, trial: FrozenTrial
    ) -> SuccessiveHalvingPruner:
        bracket = pruner._pruners[pruner._get_bracket_id(study, trial)]
        assert isinstance(bracket, SuccessiveHalvingPruner)
        return bracket

    def _floor(self, study: optuna.study.Study, trial: FrozenTrial) -> int:
        kept = self._floors.get((study._study_id, trial._trial_id))
        if kept is None or kept[0] is not study._storage:
            return 0
        return kept[1]

    def promotion_step(
        self, pruner: HyperbandPruner, study: optuna.study.Study, trial: FrozenTrial
    ) -> int:
        """The promotion step of the trial's floor: below it, the pruner answers False."""
        return promotion_step(self._bracket(pruner, study, trial), self._floor(study, trial))

    def passed(
        self, pruner: HyperbandPruner, study: optuna.study.Study, trial: FrozenTrial, step: int
    ) -> None:
        """Record that the pruner answered False for ``trial`` at ``step``."""
        bracket = self._bracket(pruner, study, trial)
        if promotion_step(bracket, 0) < 0:
            return
        floor = self._floor(study, trial)
        while promotion_step(bracket, floor) <= step:
            floor += 1
        if len(self._floors) >= _LIMIT:
            self._floors.clear()
        self._floors[(study._study_id, trial._trial_id)] = (study._storage, floor)
