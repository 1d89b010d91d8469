"""Concrete trial configurations and the mapping to and from Optuna parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lrsearch.search_space._definition import StudyDefinition
from lrsearch.search_space._errors import ConfigError, Problem
from lrsearch.search_space._schedules import (
    SCHEDULE_PARAMS,
    OptimizerName,
    ParamSpec,
    ScheduleType,
    WeightInit,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepSchedule(_Frozen):
    """``StepLR``: multiply the LR by ``gamma`` every ``step_size`` epochs."""

    type: Literal["step"] = "step"
    step_size: int = Field(ge=1)
    gamma: float = Field(gt=0.0, le=1.0)


class ExponentialSchedule(_Frozen):
    """``ExponentialLR``: multiply the LR by ``gamma`` every epoch."""

    type: Literal["exponential"] = "exponential"
    gamma: float = Field(gt=0.0, le=1.0)


class CosineSchedule(_Frozen):
    """``CosineAnnealingLR`` to ``eta_min * lr`` over the epochs left after warm-up."""

    type: Literal["cosine"] = "cosine"
    eta_min: float = Field(ge=0.0, le=1.0)


class PlateauSchedule(_Frozen):
    """``ReduceLROnPlateau`` on the objective: multiply by ``factor`` after ``patience``."""

    type: Literal["plateau"] = "plateau"
    factor: float = Field(gt=0.0, lt=1.0)
    patience: int = Field(ge=0)


class CyclicSchedule(_Frozen):
    """``CyclicLR`` between the LR and ``max_lr * lr``; ``step_size`` epochs per half cycle."""

    type: Literal["cyclic"] = "cyclic"
    max_lr: float = Field(ge=1.0)
    step_size: int = Field(ge=1)
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"


class WarmupSchedule(_Frozen):
    """``LinearLR`` from ``start_factor * lr`` to ``lr`` over ``ramp_epochs``, then constant."""

    type: Literal["warmup"] = "warmup"
    start_factor: float = Field(gt=0.0, le=1.0)
    ramp_epochs: int = Field(ge=1)


Schedule = Annotated[
    StepSchedule
    | ExponentialSchedule
    | CosineSchedule
    | PlateauSchedule
    | CyclicSchedule
    | WarmupSchedule,
    Field(discriminator="type"),
]


class TrialConfig(_Frozen):
    """Everything a worker needs to train one trial, fully resolved and typed."""

    schedule: Schedule
    learning_rate: float = Field(gt=0.0)
    batch_size: int = Field(gt=0)
    dropout: float = Field(ge=0.0, lt=1.0)
    weight_init: WeightInit = "default"
    warmup_epochs: int = Field(default=0, ge=0)
    optimizer: OptimizerName = "sgd"
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_epochs: int = Field(gt=0)

    @property
    def schedule_type(self) -> ScheduleType:
        return self.schedule.type

    def to_params(self) -> dict[str, Any]:
        """The flat Optuna parameter dict (names as in DESIGN.md)."""
        params: dict[str, Any] = {
            "schedule": self.schedule.type,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "dropout": self.dropout,
            "weight_init": self.weight_init,
            "warmup_epochs": self.warmup_epochs,
            "optimizer": self.optimizer,
            "weight_decay": self.weight_decay,
        }
        for key, value in self.schedule.model_dump(exclude={"type"}).items():
            params[f"{self.schedule.type}.{key}"] = value
        return params


def schedule_param_specs(
    definition: StudyDefinition, schedule: ScheduleType
) -> dict[str, ParamSpec]:
    """The ranges a study samples for one schedule's parameters (defaults + overrides)."""
    specs = dict(SCHEDULE_PARAMS[schedule])
    for name, rng in definition.search_space.schedule_params.get(schedule, {}).items():
        spec = specs[name]
        if spec.kind == "categorical":
            specs[name] = replace(spec, choices=tuple(rng.choices or spec.choices))
        else:
            low = spec.low if rng.low is None else rng.low
            high = spec.high if rng.high is None else rng.high
            log = spec.log if rng.log is None else rng.log
            specs[name] = replace(spec, low=low, high=high, log=log)
    return specs


def _check_value(loc: str, value: Any, spec: ParamSpec) -> str | None:
    if spec.kind == "categorical":
        return None if value in spec.choices else f"must be one of {list(spec.choices)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if spec.kind == "int" and not float(value).is_integer():
        return "must be an integer"
    if not spec.low <= value <= spec.high:
        return f"{value} is outside [{spec.low}, {spec.high}]"
    return None


def dimension_specs(definition: StudyDefinition) -> dict[str, ParamSpec]:
    """The specs of the non-schedule dimensions a study samples, by Optuna name."""
    space = definition.search_space
    specs: dict[str, ParamSpec] = {
        "schedule": ParamSpec("categorical", choices=tuple(space.schedules)),
        "learning_rate": ParamSpec(
            "float", space.learning_rate.low, space.learning_rate.high, log=space.learning_rate.log
        ),
        "batch_size": ParamSpec("categorical", choices=tuple(str(b) for b in space.batch_size)),
        "dropout": ParamSpec("float", space.dropout.low, space.dropout.high),
        "weight_init": ParamSpec("categorical", choices=tuple(space.weight_init)),
    }
    low, high = definition.warmup_bounds()
    if low != high:
        specs["warmup_epochs"] = ParamSpec("int", low, high)
    if space.optimizer is not None:
        specs["optimizer"] = ParamSpec("categorical", choices=tuple(space.optimizer))
    if space.weight_decay is not None:
        wd = space.weight_decay
        specs["weight_decay"] = ParamSpec("float", wd.low, wd.high, log=wd.log)
    return specs


def validate_fixed_params(definition: StudyDefinition, params: Mapping[str, Any]) -> TrialConfig:
    """Check a user-given configuration against a study's space (e.g. to enqueue a baseline).

    ``params`` uses the Optuna parameter names: ``schedule``, ``learning_rate``,
    ``batch_size``, ``dropout``, ``weight_init``, ``warmup_epochs`` (when the
    space samples it), ``optimizer``/``weight_decay`` (when sampled) and the
    chosen schedule's own ``<schedule>.<param>`` values.

    Raises:
        ConfigError: Listing every missing, unknown or out-of-range parameter.
    """
    problems: list[Problem] = []
    dims = dimension_specs(definition)
    schedule = params.get("schedule")
    sched_specs: dict[str, ParamSpec] = {}
    if schedule in definition.search_space.schedules:
        sched_specs = {
            f"{schedule}.{k}": v for k, v in schedule_param_specs(definition, schedule).items()
        }
    expected = {**dims, **sched_specs}
    if schedule == "warmup":
        # Not sampled for warm-up trials (it would ramp twice); ignored if given.
        optional = expected.pop("warmup_epochs", None)
        if optional is not None and "warmup_epochs" in params:
            msg = _check_value("warmup_epochs", params["warmup_epochs"], optional)
            if msg:
                problems.append(Problem(("warmup_epochs",), msg))
    for name, spec in expected.items():
        if name not in params:
            problems.append(Problem((name,), "missing"))
            continue
        value = params[name]
        if name == "batch_size":
            ok = isinstance(value, int) and not isinstance(value, bool)
            msg = (
                None
                if ok and value in definition.search_space.batch_size
                else (f"must be one of {definition.search_space.batch_size}")
            )
        else:
            msg = _check_value(name, value, spec)
        if msg:
            problems.append(Problem((name,), msg))
    for name in params:
        if name not in expected and not (name == "warmup_epochs" and schedule == "warmup"):
            problems.append(Problem((name,), "not a parameter of this study's space"))
    if problems:
        raise ConfigError(problems)
    return config_from_params(definition, params)


def config_from_params(definition: StudyDefinition, params: Mapping[str, Any]) -> TrialConfig:
    """Build a :class:`TrialConfig` from Optuna params already known to be valid."""
    schedule = params["schedule"]
    prefix = f"{schedule}."
    sched_fields = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
    low, _ = definition.warmup_bounds()
    return TrialConfig.model_validate(
        {
            "schedule": {"type": schedule, **sched_fields},
            "learning_rate": params["learning_rate"],
            "batch_size": params["batch_size"],
            "dropout": params["dropout"],
            "weight_init": params["weight_init"],
            # A warm-up schedule is its own ramp: never a prefix as well.
            "warmup_epochs": 0 if schedule == "warmup" else params.get("warmup_epochs", low),
            "optimizer": params.get("optimizer", "sgd"),
            "weight_decay": params.get("weight_decay", 0.0),
            "max_epochs": definition.budget.max_epochs,
        }
    )
