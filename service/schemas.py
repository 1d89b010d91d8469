"""Request and response bodies of the REST API, and conversions from storage types."""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lrsearch.search_space import ScheduleSettings, StudyDefinition, trial_settings
from lrsearch.storage import (
    ApiKey,
    Confirmed,
    CrossStudySchedule,
    InfeasibleBatch,
    ScheduleStats,
    StudyProgress,
    StudyRecord,
    StudySummary,
    TrialDetail,
    TrialRow,
)

TrialStateName = Literal["RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL"]
ControlStateName = Literal["running", "paused", "cancelled", "failed"]
StudyStateName = Literal["running", "paused", "cancelled", "failed", "finished"]
_STATE_DOC = "`finished` once every trial of the budget has finished, else `control_state`."
_REASON_DOC = "Why the study is `failed` (e.g. its trials keep failing alike); else null."

EXAMPLE_DEFINITION: dict[str, Any] = {
    "name": "digits-schedules",
    "task": "digits-mlp",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "budget": {"n_trials": 60, "max_epochs": 20},
    "sampler": {"type": "tpe", "seed": 0},
    "pruner": {"type": "hyperband", "min_epochs": 1},
    "search_space": {
        "schedules": ["step", "exponential", "cosine", "plateau", "cyclic", "warmup"],
        "warmup_epochs": {"low": 0, "high": 5},
        "learning_rate": {"low": 1.0e-4, "high": 1.0, "log": True},
        "batch_size": [32, 64, 128, 256],
        "dropout": {"low": 0.0, "high": 0.5},
        "weight_init": ["xavier_uniform", "kaiming_normal", "orthogonal", "default"],
    },
}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FieldProblem(_Out):
    loc: list[str | int] = Field(description="Path of the offending field.")
    msg: str


class ProblemDetails(_Out):
    """An RFC 9457 problem; validation problems add ``errors``."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


class TrialOut(_Out):
    number: int
    state: TrialStateName
    value: float | None
    schedule: str | None
    learning_rate: float | None
    batch_size: int | None
    dropout: float | None
    weight_init: str | None
    warmup_epochs: int | None
    epochs_run: int
    duration_s: float | None
    worker: str | None
    device: str | None
    error: str | None
    retry_of: int | None
    params: dict[str, Any]


class TrialDetailOut(TrialOut):
    intermediate_values: dict[int, float | None] = Field(
        description="The objective after each epoch (the learning curve); null where not finite."
    )
    lr_curve: list[float | None] = Field(description="Learning rate used in each epoch.")
    metrics: list[dict[str, Any]]
    user_attrs: dict[str, Any]
    datetime_start: str | None
    datetime_complete: str | None


class TrialPage(_Out):
    items: list[TrialOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class StudyBrief(_Out):
    """A study in the list: where it stands, without its definition."""

    name: str
    task: str
    state: StudyStateName = Field(description=_STATE_DOC)
    control_state: ControlStateName
    state_reason: str | None = Field(description=_REASON_DOC)
    direction: str
    n_trials: int = Field(description="The trial budget.")
    max_epochs: int
    created_at: datetime.datetime
    counts: dict[TrialStateName, int] = Field(description="Trials per state.")
    finished: int = Field(description="Finished trials that count toward the budget.")
    best_value: float | None = Field(description="Value of the best complete trial.")


class StudyPage(_Out):
    items: list[StudyBrief]
    next_cursor: str | None


class InfeasibleOut(_Out):
    batch_size: int | None
    device: str = Field(description="CUDA device name, or the worker's device label.")
    memory_gb: float | None = Field(description="The device's total memory (GiB); null off CUDA.")
    trials: int = Field(description="Trials that ran out of memory with this batch size here.")


class StudyOut(_Out):
    name: str
    task: str
    state: StudyStateName = Field(description=_STATE_DOC)
    control_state: ControlStateName
    state_reason: str | None = Field(description=_REASON_DOC)
    direction: str
    metric: str
    n_trials: int = Field(description="The trial budget.")
    max_epochs: int
    created_at: datetime.datetime
    updated_at: datetime.datetime
    counts: dict[TrialStateName, int] = Field(description="Trials per state.")
    finished: int = Field(description="Finished trials that count toward the budget.")
    confirmations: dict[TrialStateName, int] = Field(
        default_factory=dict,
        description="Confirmation trials per state (re-runs of winners; not in `counts`).",
    )
    best: TrialOut | None
    epochs_spent: int
    epochs_saved: int = Field(description="Epochs not trained thanks to pruning.")
    definition: StudyDefinition
    lr_range: dict[str, Any] | None = Field(
        default=None,
        description="An `auto` study's LR range test: `{low, high, steepest, diverged, "
        "batches, lrs, losses, settings}` (non-finite losses as null); null otherwise.",
    )
    infeasible: list[InfeasibleOut] = Field(
        default_factory=list,
        description="Batch sizes that ran out of GPU memory, per device (those trials are "
        "PRUNED with an `oom` error).",
    )
    warm_start: dict[str, Any] | None = Field(
        default=None,
        description="What the warm start enqueued and skipped: `{from, top_k, enqueued: "
        "[{study, trial, value, params, notes}], skipped: [{study, trial, value, schedule, "
        "reason}]}`; null when the study asked for none.",
    )


class EnqueueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(
        description="A configuration in Optuna parameter names, e.g. `step.gamma`.",
        examples=[
            {
                "schedule": "step",
                "learning_rate": 0.1,
                "batch_size": 64,
                "dropout": 0.1,
                "weight_init": "default",
                "warmup_epochs": 0,
                "step.step_size": 5,
                "step.gamma": 0.5,
            }
        ],
    )
    partial: bool = Field(
        default=False,
        description="Accept a subset of the parameters: the others are sampled. "
        "A schedule's own parameter then needs `schedule` as well.",
    )


class EnqueuedOut(_Out):
    study: str
    params: dict[str, Any]


class BestOut(_Out):
    study: str
    trial: TrialOut | None = Field(description="Null until a trial completes.")


class ScheduleSettingsOut(_Out):
    scheduler: str = Field(description="The `torch.optim.lr_scheduler` class, e.g. `StepLR`.")
    args: dict[str, Any] = Field(
        description="Its arguments by PyTorch name, every learning rate absolute "
        "(`CyclicLR.step_size_up` in epochs)."
    )
    call: str = Field(description="One line, e.g. `StepLR(step_size=3, gamma=0.5)`.")
    warmup: str | None = Field(description="The `LinearLR` warm-up prefix, if any.")


class ConfirmedOut(_Out):
    of: int = Field(description="The confirmed search trial's number.")
    mean: float = Field(description="Mean over the original and its completed confirmations.")
    std: float | None = Field(description="Sample standard deviation; null for one value.")
    n: int = Field(description="How many values the mean rests on.")
    values: list[float]
    within_noise: list[str] = Field(
        description="Schedule types whose confirmed mean differs from this one by less "
        "than 2 x sqrt(s1^2/n1 + s2^2/n2): the ranking between them is not established."
    )


class ScheduleStatsOut(_Out):
    schedule: str
    best: TrialOut | None
    n_complete: int
    n_pruned: int
    n_failed: int
    median_value: float | None
    settings: ScheduleSettingsOut | None = Field(
        default=None, description="The best trial's schedule as PyTorch takes it."
    )
    epochs_trained: int | None = Field(default=None, description="Epochs the best trial ran.")
    confirmed: ConfirmedOut | None = Field(
        default=None,
        description="The winner re-trained with other seeds: mean, spread and n. "
        "Null until confirmations complete; ranks the schedule types where present.",
    )


class SchedulesOut(_Out):
    study: str
    items: list[ScheduleStatsOut] = Field(description="Best schedule first.")


class ImportanceOut(_Out):
    study: str
    evaluator: str
    n_complete: int = Field(description="Completed trials the importances are based on.")
    n_trials: int = Field(
        description="Completed trials the importances rest on (a bounded sample of them "
        "in very big studies)."
    )
    warning: str | None = Field(
        default=None,
        description="Set below a minimum of completed trials: show it instead of the ranking.",
    )
    importances: dict[str, float] = Field(description="Normalised importances, largest first.")
    notes: list[str] = Field(description="Caveats reported by the evaluator.")


class HealthOut(_Out):
    status: Literal["ok"]
    database: Literal["ok"]


class KeyCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["read", "submit", "admin"]


class KeyOut(_Out):
    key_id: str
    scope: Literal["read", "submit", "admin"]
    tenant: str
    created_at: datetime.datetime
    revoked: bool


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The key itself; shown only this once.")


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats (anywhere inside) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _time(epoch_s: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_s, tz=datetime.UTC)


def trial_out(row: TrialRow) -> TrialOut:
    """The API view of a trial row."""
    fields = {name: getattr(row, name) for name in TrialOut.model_fields}
    return TrialOut.model_validate(_finite(fields))


def trial_detail_out(detail: TrialDetail) -> TrialDetailOut:
    """The API view of one trial in full."""
    fields: dict[str, Any] = {name: getattr(detail.row, name) for name in TrialOut.model_fields}
    fields.update(
        intermediate_values=detail.intermediate_values,
        lr_curve=detail.lr_curve,
        metrics=detail.metrics,
        user_attrs=detail.user_attrs,
        datetime_start=detail.datetime_start,
        datetime_complete=detail.datetime_complete,
    )
    return TrialDetailOut.model_validate(_finite(fields))


def study_brief(record: StudyRecord, progress: StudyProgress) -> StudyBrief:
    """The list view of a study."""
    return StudyBrief(
        name=record.name,
        task=record.task,
        state="finished" if progress.done else record.state,
        control_state=record.state,
        state_reason=record.state_reason,
        direction=record.direction,
        n_trials=record.n_trials,
        max_epochs=record.max_epochs,
        created_at=_time(record.created_at),
        counts=progress.counts,
        finished=progress.finished,
        best_value=progress.best_value,
    )


def study_out(
    record: StudyRecord,
    summary: StudySummary,
    lr_range: dict[str, Any] | None = None,
    infeasible: list[InfeasibleBatch] | None = None,
    warm_start: dict[str, Any] | None = None,
) -> StudyOut:
    """The full view of a study: its definition, where it stands, its LR range test,
    the batch sizes that ran out of memory and what its warm start enqueued."""
    return StudyOut(
        name=record.name,
        task=record.task,
        state="finished" if summary.done else record.state,
        control_state=record.state,
        state_reason=record.state_reason,
        direction=record.direction,
        metric=record.definition.objective.metric,
        n_trials=record.n_trials,
        max_epochs=record.max_epochs,
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
        counts=summary.counts,
        finished=summary.finished,
        confirmations=summary.confirmations,
        best=trial_out(summary.best) if summary.best is not None else None,
        epochs_spent=summary.epochs_spent,
        epochs_saved=summary.epochs_saved,
        definition=record.definition,
        lr_range=None if lr_range is None else _finite(lr_range),
        infeasible=[InfeasibleOut(**dataclasses.asdict(b)) for b in infeasible or []],
        warm_start=None if warm_start is None else _finite(warm_start),
    )


def settings_out(settings: ScheduleSettings | None) -> ScheduleSettingsOut | None:
    """The API view of a trial's schedule settings."""
    if settings is None:
        return None
    return ScheduleSettingsOut(
        scheduler=settings.scheduler,
        args=_finite(settings.args),
        call=settings.call,
        warmup=settings.warmup,
    )


def schedule_stats_out(
    stats: ScheduleStats,
    definition: StudyDefinition | None = None,
    confirmed: Confirmed | None = None,
) -> ScheduleStatsOut:
    """The API view of one schedule's results; with ``definition``, the winner's settings."""
    best = stats.best
    settings = None
    if best is not None and definition is not None:
        settings = settings_out(trial_settings(definition, best.params))
    return ScheduleStatsOut(
        schedule=stats.schedule,
        best=trial_out(best) if best is not None else None,
        n_complete=stats.n_complete,
        n_pruned=stats.n_pruned,
        n_failed=stats.n_failed,
        median_value=_finite(stats.median_value),
        settings=settings,
        epochs_trained=None if best is None else best.epochs_run,
        confirmed=None
        if confirmed is None
        else ConfirmedOut.model_validate(_finite(dataclasses.asdict(confirmed))),
    )


def key_out(key: ApiKey) -> KeyOut:
    """The API view of a stored key (never its secret)."""
    return KeyOut(
        key_id=key.key_id,
        scope=key.scope,
        tenant=key.tenant,
        created_at=_time(key.created_at),
        revoked=key.revoked,
    )


class CrossStudyTrialOut(_Out):
    study: str
    metric: str
    number: int
    value: float | None
    learning_rate: float | None
    batch_size: int | None
    dropout: float | None
    weight_init: str | None
    warmup_epochs: int | None
    epochs_trained: int
    max_epochs: int
    params: dict[str, Any] = Field(description="The trial's Optuna params, as sampled.")
    settings: ScheduleSettingsOut | None


class CrossStudyScheduleOut(_Out):
    direction: Literal["maximize", "minimize"]
    schedule: str
    trials: list[CrossStudyTrialOut] = Field(description="Best first.")


class CrossStudyBestOut(_Out):
    task: str
    items: list[CrossStudyScheduleOut] = Field(
        description="Per direction (maximize first; values of the two are never compared) "
        "and schedule type, the best schedule first."
    )


def cross_study_out(task: str, groups: list[CrossStudySchedule]) -> CrossStudyBestOut:
    """The API view of :func:`storage.best_across_studies`."""
    items = [
        CrossStudyScheduleOut.model_validate(
            {
                "direction": g.direction,
                "schedule": g.schedule,
                "trials": [
                    _finite(
                        {
                            "study": t.study,
                            "metric": t.metric,
                            "number": t.row.number,
                            "value": t.row.value,
                            "learning_rate": t.row.learning_rate,
                            "batch_size": t.row.batch_size,
                            "dropout": t.row.dropout,
                            "weight_init": t.row.weight_init,
                            "warmup_epochs": t.row.warmup_epochs,
                            "epochs_trained": t.row.epochs_run,
                            "max_epochs": t.max_epochs,
                            "params": t.row.params,
                        }
                    )
                    | {"settings": settings_out(t.settings)}
                    for t in g.trials
                ],
            }
        )
        for g in groups
    ]
    return CrossStudyBestOut(task=task, items=items)
