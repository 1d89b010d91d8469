"""The ``confirm`` section of a study definition (contract names: ``top_k``, ``seeds``).

``confirm: {top_k: K, seeds: S}``: once the search budget is spent, the ``K``
best COMPLETE trials of each schedule type are trained ``S`` more times with
the same parameters (another trial number, hence another training seed), so
the leaderboard can rank schedule types by a mean with its spread instead of
one lucky trial. ``0`` in either field turns the phase off. Running it is
storage's job (``lrsearch.storage._confirm``); this module only describes it.

Default when the section is left out: ``{top_k: 1, seeds: 2}`` when
``budget.n_trials >= 30``, off below. With the six schedule types that is at
most 6 x 1 x 2 = 12 extra trials, at most 40 % of a 30-trial budget and less
for larger ones; below 30 trials the search itself is too thin for a
confirmation to be worth its share of the budget.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_TOP_K = 5
MAX_SEEDS = 10
DEFAULT_MIN_TRIALS = 30


class Confirm(BaseModel):
    """How many winners per schedule type to re-train, and how many times each."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    top_k: int = Field(default=1, ge=0, le=MAX_TOP_K, description="winners per schedule type")
    seeds: int = Field(default=2, ge=0, le=MAX_SEEDS, description="re-runs of each winner")

    @property
    def enabled(self) -> bool:
        return self.top_k > 0 and self.seeds > 0


def default_confirm(n_trials: int) -> Confirm:
    """The confirmation phase a definition without a ``confirm`` section gets (module doc)."""
    if n_trials >= DEFAULT_MIN_TRIALS:
        return Confirm(top_k=1, seeds=2)
    return Confirm(top_k=0, seeds=0)
