"""Schedule-aware pruning: judge a trial only when its learning rate says something.

The rule, applied in front of whichever pruner a study configures:

- **Warm-up.** A trial is never pruned during its warm-up: the ``warmup_epochs``
  prefix (a linear ramp to the base learning rate) or, for the ``warmup``
  schedule type (which is never prefixed), its own ``warmup.ramp_epochs``.
  Epochs are 0-based steps, so a trial with ``W`` ramp epochs is first judged
  on the value it reports at step ``W``, its first epoch at the full learning
  rate. While the LR is still low a trial is slow by construction, and a median
  or successive-halving pruner would otherwise kill exactly the schedules that
  would overtake later.
- **Cyclic.** A ``cyclic`` trial is judged only at the end of each full cycle
  (``2 * cyclic.step_size`` epochs after its warm-up), when its learning rate is
  back at the base rate. Mid-cycle, at the peak, its loss is high by design.
  Cycle boundaries rather than best-so-far: Optuna's pruners compare values at
  the same step, and at a boundary every cyclic trial is in a comparable phase.
  A trial whose first cycle ends after ``max_epochs`` is never pruned.
- **Otherwise** the configured pruner (hyperband, median, percentile,
  successive_halving) decides, on the study's trials as usual.

Skipping steps is safe for every wrapped pruner: median and percentile compare
the trial's best value so far at whatever step they are asked, and successive
halving records every rung the trial has passed since it was last asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.pruners import BasePruner, HyperbandPruner
from optuna.trial import FrozenTrial

from lrsearch.search_space._bracket_study import bracket_study
from lrsearch.search_space._rung_floors import RungFloors


def protected_until(params: Mapping[str, Any], default_warmup_epochs: int = 0) -> int:
    """The first step (0-based epoch) at which a trial with ``params`` may be judged.

    Args:
        params: The trial's Optuna parameters (``warmup_epochs``, ``schedule``,
            ``warmup.ramp_epochs``...).
        default_warmup_epochs: The warm-up of a study whose definition fixes it
            (then it is not an Optuna parameter).
    """
    if params.get("schedule") == "warmup":
        # The warm-up schedule is its own ramp, never prefixed (as config_from_params).
        return int(params.get("warmup.ramp_epochs", 0))
    return int(params.get("warmup_epochs", default_warmup_epochs))


def may_judge(trial: FrozenTrial, default_warmup_epochs: int = 0) -> bool:
    """Whether the schedule rule lets the configured pruner look at ``trial`` now."""
    if "confirmation_of" in trial.user_attrs:
        # A confirmation re-trains a winner to measure its spread over seeds
        # (lrsearch.storage._confirm): pruning it would drop a value from the mean.
        return False
    step = trial.last_step
    if step is None:
        return True  # nothing reported: the wrapped pruner answers False itself
    start = protected_until(trial.params, default_warmup_epochs)
    if step < start:
        return False
    if trial.params.get("schedule") == "cyclic":
        cycle = 2 * int(trial.params.get("cyclic.step_size", 1))
        return (step + 1 - start) % cycle == 0
    return True


class ScheduleAwarePruner(BasePruner):
    """Wraps any Optuna pruner with the schedule rule of this module.

    Args:
        pruner: The configured pruner; it decides whenever the rule allows.
        default_warmup_epochs: Warm-up epochs of trials that do not carry a
            ``warmup_epochs`` parameter (a study that fixes it).
    """

    def __init__(self, pruner: BasePruner, default_warmup_epochs: int = 0) -> None:
        if isinstance(pruner, HyperbandPruner):
            # Optuna finds Hyperband's brackets with isinstance(study.pruner,
            # HyperbandPruner) (optuna.pruners._filter_study); a wrapper would
            # hide them from the sampler. ScheduleAwareHyperbandPruner keeps them.
            raise TypeError("wrap Hyperband with ScheduleAwareHyperbandPruner")
        self._pruner = pruner
        self._default_warmup = default_warmup_epochs

    @property
    def pruner(self) -> BasePruner:
        """The wrapped pruner."""
        return self._pruner

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        if not may_judge(trial, self._default_warmup):
            return False
        return self._pruner.prune(study, trial)


class ScheduleAwareHyperbandPruner(HyperbandPruner):
    """Optuna's Hyperband with the schedule rule in front.

    A subclass rather than a wrapper: Optuna's trials and ``tell`` route the
    sampler to a trial's bracket only when ``study.pruner`` *is* a
    ``HyperbandPruner``, and the bracket study asserts the same. Inheriting keeps
    ``_get_bracket_id`` and the per-bracket successive-halving pruners exactly
    as Optuna implements them.

    Two shortcuts, each deciding exactly as Optuna would
    (``tests/search_space_tests/test_pruning_incremental.py`` replays
    randomized studies against Optuna's own Hyperband): below the promotion
    step of the rung a trial has surely reached, the answer is False without
    reading the storage (:mod:`lrsearch.search_space._rung_floors`; with 20
    epochs and ``min_epochs`` 1, all but one to three of a trial's 20 calls),
    and ``_create_bracket_study`` returns Optuna's bracket view with each
    trial's bracket computed once and without the study lookups of
    ``Study.__init__`` (:mod:`lrsearch.search_space._bracket_study`).

    Args:
        min_resource: As ``HyperbandPruner``.
        max_resource: As ``HyperbandPruner``.
        reduction_factor: As ``HyperbandPruner``.
        default_warmup_epochs: As :class:`ScheduleAwarePruner`.
    """

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: int = 20,
        reduction_factor: int = 3,
        default_warmup_epochs: int = 0,
    ) -> None:
        super().__init__(
            min_resource=min_resource, max_resource=max_resource, reduction_factor=reduction_factor
        )
        self._default_warmup = default_warmup_epochs
        self._floors = RungFloors()
        self._bracket_ids: dict[str, dict[int, int]] = {}

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        if self.surely_keeps(study, trial):
            return False
        pruned = super().prune(study, trial)
        step = trial.last_step
        if not pruned and self._pruners and step is not None:
            self._floors.passed(self, study, trial, step)
        return pruned

    def _create_bracket_study(
        self, study: optuna.study.Study, bracket_id: int
    ) -> optuna.study.Study:
        # Optuna's bracket view, each trial's bracket computed once (_bracket_study).
        brackets = self._bracket_ids.setdefault(study.study_name, {})
        return bracket_study(study, self, bracket_id, brackets)

    def surely_keeps(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Whether :meth:`prune` answers False, known without reading the storage.

        True during the schedule rule's protection, before the first report,
        and below the promotion step of the lowest rung the trial can be at
        (:class:`RungFloors`): successive halving answers False there before
        it reads or writes anything.
        """
        if not may_judge(trial, self._default_warmup):
            return True
        if not self._pruners:
            return False  # not initialised yet: Optuna's path initialises and decides
        step = trial.last_step
        if step is None:
            return True
        return step < self._floors.promotion_step(self, study, trial)
