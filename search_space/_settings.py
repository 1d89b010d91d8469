"""A trial's schedule as PyTorch takes it: the scheduler class and its arguments, absolute.

The search space samples some values relative to the learning rate
(``cyclic.max_lr`` is a multiple of it, ``cosine.eta_min`` a fraction of it);
a leaderboard that shows those numbers answers the wrong question. Here each
schedule becomes the ``torch.optim.lr_scheduler`` call a built-in worker makes
(the same values as :mod:`lrsearch.search_space._pytorch_code`), with every
learning rate a learning rate, in a form a table or a terminal can show:
``StepLR(step_size=3, gamma=0.5)``. Pure: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ScheduleSettings:
    """One trial's schedule in PyTorch's terms.

    Attributes:
        scheduler: The ``torch.optim.lr_scheduler`` class (``"StepLR"``...).
        args: Its arguments by PyTorch name, absolute (learning rates as learning
            rates); ``CyclicLR``'s ``step_size_up`` is given in epochs (PyTorch
            counts batches: multiply by the batches per epoch).
        call: ``scheduler(args...)`` as one line, e.g. ``StepLR(step_size=3, gamma=0.5)``.
        warmup: The ``LinearLR`` warm-up prefix as one line, or ``None`` without one.
    """

    scheduler: str
    args: dict[str, Any]
    call: str
    warmup: str | None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _scheduler(config: TrialConfig, direction: str) -> tuple[str, dict[str, Any]]:
    lr, s = config.learning_rate, config.schedule
    if isinstance(s, StepSchedule):
        return "StepLR", {"step_size": s.step_size, "gamma": s.gamma}
    if isinstance(s, ExponentialSchedule):
        return "ExponentialLR", {"gamma": s.gamma}
    if isinstance(s, CosineSchedule):
        t_max = max(1, config.max_epochs - config.warmup_epochs - 1)
        return "CosineAnnealingLR", {"T_max": t_max, "eta_min": s.eta_min * lr}
    if isinstance(s, PlateauSchedule):
        mode = "max" if direction == "maximize" else "min"
        return "ReduceLROnPlateau", {"mode": mode, "factor": s.factor, "patience": s.patience}
    if isinstance(s, CyclicSchedule):
        return "CyclicLR", {
            "base_lr": lr,
            "max_lr": s.max_lr * lr,
            "step_size_up": s.step_size,
            "mode": s.mode,
        }
    if isinstance(s, WarmupSchedule):
        # A factor in PyTorch too; the ramp then holds the learning rate.
        return "LinearLR", {
            "start_factor": s.start_factor,
            "end_factor": 1.0,
            "total_iters": s.ramp_epochs,
        }
    raise ValueError(f"unknown schedule {s!r}")


def schedule_settings(config: TrialConfig, *, direction: str) -> ScheduleSettings:
    """The PyTorch view of ``config``'s schedule (see :class:`ScheduleSettings`).

    Args:
        config: The trial's configuration, values as sampled (relative ones included).
        direction: ``maximize`` or ``minimize``: ``ReduceLROnPlateau``'s ``mode``.
    """
    name, args = _scheduler(config, direction)
    unit = {"step_size_up": " epochs"} if name == "CyclicLR" else {}
    call = f"{name}(" + ", ".join(f"{k}={_fmt(v)}{unit.get(k, '')}" for k, v in args.items())
    w = config.warmup_epochs
    warmup = None
    if w > 0:
        warmup = f"LinearLR(start_factor={_fmt(1.0 / (w + 1))}, end_factor=1.0, total_iters={w})"
    return ScheduleSettings(scheduler=name, args=args, call=call + ")", warmup=warmup)


def trial_settings(
    definition: StudyDefinition, params: Mapping[str, Any]
) -> ScheduleSettings | None:
    """:func:`schedule_settings` for a trial's stored Optuna params.

    Returns:
        The settings, or ``None`` when the params do not make a configuration of
        this definition (not sampled yet, or stored under an older search space).
    """
    if "schedule" not in params:
        return None
    try:
        config = config_from_params(definition, params)
    except (KeyError, ValidationError):
        return None
    return schedule_settings(config, direction=definition.direction)
