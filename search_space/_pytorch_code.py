"""A trial's optimizer and schedule as ready-to-paste PyTorch code, every value absolute.

Pure string work on a :class:`TrialConfig`, so that the service (``GET
/studies/{name}/trials/{number}/pytorch``), the client and the CLI (``lrsearch
best NAME --as pytorch``) print the same code. The code builds the same
``torch.optim.lr_scheduler`` objects that a built-in worker runs
(:class:`lrsearch.workers._schedules.LRSchedule`): a ``LinearLR`` warm-up
prefix of ``warmup_epochs`` and the trial's own schedule, joined by
``SequentialLR`` where PyTorch allows it. No torch is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lrsearch.search_space._config import (
    CosineSchedule,
    CyclicSchedule,
    ExponentialSchedule,
    PlateauSchedule,
    StepSchedule,
    TrialConfig,
    WarmupSchedule,
    config_from_params,
)
from lrsearch.search_space._definition import StudyDefinition
from lrsearch.search_space._errors import ConfigError, Problem

SGD_MOMENTUM = 0.9  # as lrsearch.workers._schedules.SGD_MOMENTUM (not imported: it loads torch)
_OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
}


def _num(value: float) -> str:
    return repr(float(value))


def _main_scheduler(config: TrialConfig, direction: str) -> tuple[str, str]:
    """The main scheduler's constructor call and when to step it."""
    lr, schedule = config.learning_rate, config.schedule
    if isinstance(schedule, StepSchedule):
        call = f"lr_scheduler.StepLR(optimizer, step_size={schedule.step_size}, "
        return call + f"gamma={_num(schedule.gamma)})", "epoch"
    if isinstance(schedule, ExponentialSchedule):
        return f"lr_scheduler.ExponentialLR(optimizer, gamma={_num(schedule.gamma)})", "epoch"
    if isinstance(schedule, CosineSchedule):
        t_max = max(1, config.max_epochs - config.warmup_epochs - 1)
        eta_min = _num(schedule.eta_min * lr)
        return f"lr_scheduler.CosineAnnealingLR(optimizer, T_max={t_max}, eta_min={eta_min})", (
            "epoch"
        )
    if isinstance(schedule, PlateauSchedule):
        mode = "max" if direction == "maximize" else "min"
        call = (
            f'lr_scheduler.ReduceLROnPlateau(optimizer, mode="{mode}", '
            f"factor={_num(schedule.factor)}, patience={schedule.patience})"
        )
        return call, "plateau"
    if isinstance(schedule, WarmupSchedule):
        call = (
            f"lr_scheduler.LinearLR(optimizer, start_factor={_num(schedule.start_factor)}, "
            f"end_factor=1.0, total_iters={schedule.ramp_epochs})"
        )
        return call, "epoch"
    if isinstance(schedule, CyclicSchedule):
        # gamma as the worker sets it: exp_range halves the amplitude every full cycle.
        call = (
            f"lr_scheduler.CyclicLR(optimizer, base_lr={_num(lr)}, "
            f"max_lr={_num(schedule.max_lr * lr)}, "
            f"step_size_up={schedule.step_size} * steps_per_epoch, "
            f'mode="{schedule.mode}", '
            f"gamma=0.5 ** (1.0 / (2 * {schedule.step_size} * steps_per_epoch)), "
            "cycle_momentum=False)"
        )
        return call, "batch"
    raise ValueError(f"unknown schedule {schedule!r}")


def pytorch_code(config: TrialConfig, *, direction: str, header: str = "") -> str:
    """Python source that builds ``optimizer`` and ``scheduler`` for ``model``.

    The source expects ``model`` (and, for a cyclic schedule, ``steps_per_epoch``)
    to exist, and says in comments when to call ``scheduler.step``.

    Args:
        config: The trial's configuration (schedule values relative, as sampled).
        direction: ``maximize`` or ``minimize`` (the plateau schedule's mode).
        header: A comment line on where the values come from.
    """
    lines = [f"# {header}"] if header else []
    lines += ["import torch", "from torch.optim import lr_scheduler", ""]
    opt = _OPTIMIZERS[config.optimizer]
    extra = f", momentum={SGD_MOMENTUM}" if config.optimizer == "sgd" else ""
    lines.append(
        f"optimizer = torch.optim.{opt}(model.parameters(), lr={_num(config.learning_rate)}"
        f"{extra}, weight_decay={_num(config.weight_decay)})"
    )
    main, when = _main_scheduler(config, direction)
    w = config.warmup_epochs
    warmup = (
        f"lr_scheduler.LinearLR(optimizer, start_factor={_num(1.0 / (w + 1))}, "
        f"end_factor=1.0, total_iters={w})"
    )
    if w == 0:
        lines.append(f"scheduler = {main}")
    elif when == "epoch":
        lines += [
            f"warmup = {warmup}",
            f"main = {main}",
            f"scheduler = lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[{w}])",
        ]
    else:
        # ReduceLROnPlateau and CyclicLR cannot go inside SequentialLR.
        lines += [
            f"warmup = {warmup}  # step after each of the first {w} epochs",
            f"# At the start of epoch {w}: scheduler = {main}",
        ]
    step = {
        "epoch": "scheduler.step() after each epoch",
        "plateau": "scheduler.step(validation_metric) after each epoch",
        "batch": "scheduler.step() after each optimizer.step()",
    }[when]
    lines += [f"# {step}; train {config.max_epochs} epochs, batch size {config.batch_size}."]
    lines.append(f"# dropout {config.dropout:.4g}, weight init {config.weight_init}.")
    return "\n".join(lines) + "\n"


def trial_pytorch_code(
    definition: StudyDefinition,
    params: Mapping[str, Any],
    *,
    number: int,
    value: float | None = None,
) -> str:
    """:func:`pytorch_code` for one trial of a study, with a header naming where it comes from.

    Args:
        definition: The study's validated definition.
        params: The trial's Optuna params, as stored.
        number: The trial's number, for the header.
        value: The trial's objective value, for the header (``None``: not finished).

    Raises:
        ConfigError: The trial has no sampled configuration yet, or its params
            do not fit the study's definition.
    """
    if "schedule" not in params:
        # A trial just claimed, before its worker sampled it.
        raise ConfigError([Problem(("params",), f"trial {number} has no sampled schedule yet")])
    try:
        config = config_from_params(definition, params)
    except (KeyError, ValidationError) as exc:
        # Params stored under an older search space than the study's definition.
        raise ConfigError([Problem(("params",), f"trial {number}: {exc}")]) from None
    metric, direction = definition.objective.metric, definition.direction
    result = "no value yet" if value is None else f"{metric} = {value:.6g} ({direction})"
    header = f"lrsearch study {definition.name!r}, trial {number}: {result}"
    return pytorch_code(config, direction=direction, header=header)
