"""The ``sampler`` section of a study definition: which sampler, its seed, balancing.

Balancing (``balance_schedules``) puts :class:`BalancedScheduleSampler
<lrsearch.search_space._balanced.BalancedScheduleSampler>` in front of the
sampler: a first round of every schedule type, then every ``balance_every``-th
trial goes to a type with fewer than ``min_per_schedule`` completed trials
(from trial ``balance_start * n_trials`` on: later, TPE has the first trials to
itself and the leaderboard is filled afterwards). Left
out, it is on for TPE and off for the other samplers (whose own sequences stay
as they are); :func:`resolve_balance` stores the decision with the definition.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SamplerType = Literal["tpe", "random", "cmaes", "gp", "qmc"]
SEED_MAX = 2**32 - 1  # what numpy (behind every Optuna sampler) accepts

# Chosen with bench/search.py (docs/benchmarks.md, "Defaults changed with this
# measurement"): k = 3 completed trials per type is what the per-schedule
# leaderboard needs to compare types; a priority trial every 3rd trial number
# spends at most a third of the trials on keeping types alive.
DEFAULT_MIN_PER_SCHEDULE = 3
DEFAULT_BALANCE_EVERY = 3


class SamplerSpec(BaseModel):
    """Which Optuna sampler proposes trials, its seed, and schedule-type balancing."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    type: SamplerType = "tpe"
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    balance_schedules: bool | None = Field(
        default=None,
        description=(
            "a first trial of every schedule type, then every balance_every-th trial to a "
            "type with fewer than min_per_schedule completed trials; left out: on for tpe"
        ),
    )
    min_per_schedule: int = Field(default=DEFAULT_MIN_PER_SCHEDULE, ge=0, le=1000)
    balance_every: int = Field(default=DEFAULT_BALANCE_EVERY, ge=1, le=1000)
    balance_start: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "priority trials start at this fraction of the trial budget (the first round "
            "of every type still comes first): 0 from the start, 0.5 after TPE has had "
            "half the trials to itself"
        ),
    )
    protect_priority: bool = Field(
        default=True,
        description="the pruner never stops a priority trial (one that keeps a type alive)",
    )

    @property
    def balanced(self) -> bool:
        """Whether the schedule type is chosen by the balanced rule."""
        if self.balance_schedules is None:
            return self.type == "tpe"
        return self.balance_schedules


def resolve_balance(spec: SamplerSpec) -> SamplerSpec:
    """``spec`` with ``balance_schedules`` decided, so the stored definition says what runs."""
    if spec.balance_schedules is not None:
        return spec
    return spec.model_copy(update={"balance_schedules": spec.balanced})
