"""Balanced exploration of schedule types: every type is tried, and none is starved.

A sampler wrapper in front of the study's own sampler (TPE by default). Only the
``schedule`` parameter is decided here; every other parameter goes to the
wrapped sampler, which already models a type's own parameters
(``<schedule>.<param>``) from that type's trials alone, since they exist on no
other trial.

The rule for the ``schedule`` parameter of a trial:

- **First round.** While some type has no trial yet (any state, running ones
  included, so that parallel workers spread out), the trial takes one of them.
- **Keep every type alive.** Afterwards every ``every``-th trial (by trial
  number) is a *priority* trial: if some type has fewer than ``min_completed``
  completed trials, the priority trial takes the one with the fewest completed
  (then the fewest running, then the fewest tried). A pruner that stops most of
  a type's trials would otherwise leave it without the few completed trials a
  per-type leaderboard needs; a sampler that learned early that a type looks
  worse would never try it again.
- **Later start** (``start``): before that trial number there are no priority
  trials, only the first round, so the wrapped sampler can exploit first and
  the leaderboard's completed trials come afterwards.
- **Otherwise** the wrapped sampler chooses, as it would without the wrapper.

A priority trial is marked (system attribute ``lrsearch:balance_priority``) and,
with :func:`protect_priority_trials` around the study's pruner, never pruned: a
pruner that stops most of a type's trials would otherwise stop its priority
trials too, and the type would never reach ``min_completed``.

Ties are broken by a generator seeded from the sampler seed and the trial
number, never by process ids or wall time: a study run by one worker replays
the same trials. Enqueued trials (warm start, fixed configurations,
confirmations) never reach a sampler for their fixed parameters; they count like
any other trial of their type, except confirmations, which re-train a winner.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.pruners import BasePruner, NopPruner
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

SCHEDULE_PARAM = "schedule"
"""The Optuna parameter holding a trial's schedule type (the contract name)."""
PRIORITY_ATTR = "lrsearch:balance_priority"
"""System attribute of a priority trial (one that keeps a type alive)."""


class BalancedScheduleSampler(BaseSampler):
    """Wraps ``base``; decides the ``schedule`` parameter by the balanced rule above.

    Args:
        base: The sampler for every other parameter (and for ``schedule`` on
            trials that are neither first-round nor priority trials).
        min_completed: Completed trials each type should reach before priority
            trials stop choosing it.
        every: A priority trial every this many trial numbers (1: every trial
            after the first round until each type has ``min_completed``).
        seed: Salts the tie-breaking generator (with the trial number); ``None``
            draws one at construction.
        start: The first trial number that may be a priority trial (the first
            round is not delayed): before it, the wrapped sampler chooses.
    """

    def __init__(
        self,
        base: BaseSampler,
        *,
        min_completed: int,
        every: int,
        seed: int | None,
        start: int = 0,
    ) -> None:
        if min_completed < 0 or every < 1 or start < 0:
            raise ValueError(
                "need min_completed >= 0, every >= 1 and start >= 0, "
                f"got {min_completed}, {every}, {start}"
            )
        self.start = start
        self.base = base
        self.min_completed = min_completed
        self.every = every
        self._seed = seed if seed is not None else random.SystemRandom().getrandbits(32)
        # Type lists whose every type has ``min_completed`` completed trials.
        self._settled: set[tuple[Any, ...]] = set()

    # -- delegated to the wrapped sampler ----------------------------------------------

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self.base.infer_relative_search_space(study, trial)
        # A multivariate base sampler must not decide the schedule jointly.
        return {k: v for k, v in space.items() if k != SCHEDULE_PARAM}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.base.sample_relative(study, trial, search_space)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    # -- the schedule parameter --------------------------------------------------------

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name == SCHEDULE_PARAM and isinstance(param_distribution, CategoricalDistribution):
            choice = self.choose_schedule(study, trial, param_distribution.choices)
            if choice is not None:
                return choice
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def choose_schedule(
        self, study: Study, trial: FrozenTrial, choices: Sequence[Any]
    ) -> Any | None:
        """The first-round or priority type for ``trial``; ``None``: the base sampler chooses."""
        if len(choices) <= 1 or tuple(choices) in self._settled:
            return None
        # Every trial of the study, from the study's per-trial cache (a Hyperband
        # bracket view shares it, and its ``_get_trials`` does not filter).
        everything = study._get_trials(deepcopy=False, use_cache=True)
        counts = schedule_counts(everything, choices, trial.number)
        if all(counts[c][0] >= max(1, self.min_completed) for c in choices):
            # Completed trials stay completed: every type is tried and has its
            # completed trials for good, so the base sampler chooses every
            # later trial and the history need not be counted again.
            self._settled.add(tuple(choices))
            return None
        rng = random.Random(self._seed * 1_000_003 + trial.number)
        untried = [c for c in choices if counts[c][2] == 0]
        if untried:
            return rng.choice(untried)
        if trial.number < self.start or trial.number % self.every != 0:
            return None
        short = [c for c in choices if counts[c][0] < self.min_completed]
        if not short:
            return None
        # Fewest completed, then fewest running (another worker may complete it),
        # then fewest tried; the generator breaks what is left.
        key = {c: counts[c] for c in short}
        least = min(key.values())
        tied = [c for c in short if key[c] == least]
        study._storage.set_trial_system_attr(trial._trial_id, PRIORITY_ATTR, True)
        return rng.choice(tied)


def schedule_counts(
    trials: Sequence[FrozenTrial], choices: Sequence[Any], exclude: int
) -> dict[Any, tuple[int, int, int]]:
    """Per type: (completed, running, tried) trials, leaving out trial ``exclude``.

    Confirmations (``confirmation_of``) re-train a winner with other seeds: they
    are not exploration, so they do not count.
    """
    out: dict[Any, list[int]] = {c: [0, 0, 0] for c in choices}
    for t in trials:
        if t.number == exclude or "confirmation_of" in t.user_attrs:
            continue
        row = out.get(t.params.get(SCHEDULE_PARAM))
        if row is None:
            continue
        row[2] += 1
        if t.state == TrialState.COMPLETE:
            row[0] += 1
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            row[1] += 1
    return {c: (v[0], v[1], v[2]) for c, v in out.items()}


def unwrap_sampler(sampler: BaseSampler) -> BaseSampler:
    """The sampler that samples everything but the schedule type (``sampler`` itself if plain)."""
    while isinstance(sampler, BalancedScheduleSampler):
        sampler = sampler.base
    return sampler


_PROTECTED: dict[type[BasePruner], type[BasePruner]] = {}


def protect_priority_trials(pruner: BasePruner) -> BasePruner:
    """``pruner`` as it is, except that it never prunes a priority trial.

    A subclass of the pruner's own class (not a wrapper), so that what Optuna
    checks by class still holds: under hyperband, samplers keep seeing the
    trial's bracket only.
    """
    if isinstance(pruner, NopPruner):
        return pruner
    cls = type(pruner)
    protected = _PROTECTED.get(cls)
    if protected is None:

        def prune(self: BasePruner, study: Study, trial: FrozenTrial) -> bool:
            surely_keeps = getattr(self, "surely_keeps", None)
            if surely_keeps is not None and surely_keeps(study, trial):
                return False  # False either way, without reading the trial's system attrs
            if trial.system_attrs.get(PRIORITY_ATTR):
                return False
            return bool(cls.prune(self, study, trial))

        protected = type(f"PriorityProtected{cls.__name__}", (cls,), {"prune": prune})
        _PROTECTED[cls] = protected
    copy = protected.__new__(protected)
    copy.__dict__.update(pruner.__dict__)
    return copy
