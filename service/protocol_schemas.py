"""Request and response bodies of the trial protocol (a client's own training code).

Every request body carries ``client_id``: the lease. Only the client that
claimed a trial may report on it, heartbeat, complete, fail or release it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ClientId = Field(
    min_length=1,
    max_length=200,
    pattern=r"^[\x21-\x7e]+$",
    description="Who runs the trial (e.g. host:pid); the lease is held by this id.",
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ClientIn(_In):
    """A body that only names the caller."""

    client_id: str = ClientId


class ReportIn(_In):
    """The objective after one epoch (0-based), optionally the LR used and other metrics."""

    client_id: str = ClientId
    epoch: int = Field(ge=0, le=1_000_000)
    value: float
    lr: float | None = Field(default=None, ge=0.0)
    metrics: dict[str, float] | None = Field(default=None, max_length=64)


class CompleteIn(_In):
    """Finish the trial; ``value`` defaults to the last reported objective."""

    client_id: str = ClientId
    value: float | None = None


class FailIn(_In):
    """Finish the trial as failed, with the reason; it is not retried."""

    client_id: str = ClientId
    error: str = Field(min_length=1, max_length=2000)


class ClaimedOut(_Out):
    """A claimed trial: run it with ``config`` and report every epoch."""

    number: int
    params: dict[str, Any] = Field(description="Optuna's parameters (names as in the docs).")
    config: dict[str, Any] = Field(
        description="The resolved configuration, every value absolute "
        "(e.g. a cyclic trial's max_lr is a learning rate, not a multiplier)."
    )
    trial_config: dict[str, Any] = Field(
        description="The same as the search space's TrialConfig (schedule values relative "
        "to the learning rate), for building the schedule with lrsearch's own code."
    )
    max_epochs: int
    heartbeat_s: float = Field(description="Send a heartbeat (or a report) at least this often.")
    objective: str
    direction: Literal["maximize", "minimize"]
    confirmation_of: int | None = Field(
        default=None,
        description="Set on a confirmation trial: the number of the trial whose configuration "
        "it re-trains with another seed (train with a seed of your own, not the winner's).",
    )


class PruneOut(_Out):
    prune: bool = Field(description="Stop training this trial: the pruner ended it (PRUNED).")


class AliveOut(_Out):
    alive: bool = True


class FinishedOut(_Out):
    number: int
    state: Literal["COMPLETE", "PRUNED", "FAIL"]
    value: float | None
