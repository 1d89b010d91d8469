"""The optimizer and learning-rate schedule of one trial, built from ``torch.optim`` only.

No learning-rate arithmetic happens here: every value the optimizer uses comes
from a scheduler in :mod:`torch.optim.lr_scheduler`. This module only decides
which scheduler runs when, and when it is stepped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from torch.optim import lr_scheduler

from lrsearch.search_space import (
    CosineSchedule,
    CyclicSchedule,
    ExponentialSchedule,
    PlateauSchedule,
    StepSchedule,
    TrialConfig,
    WarmupSchedule,
)

SGD_MOMENTUM = 0.9


def build_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrialConfig
) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, at ``config.learning_rate``.

    SGD uses momentum 0.9; every optimizer gets ``config.weight_decay``.
    """
    lr, wd = config.learning_rate, config.weight_decay
    name = config.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


class LRSchedule:
    """Runs an optional linear warm-up prefix, then the trial's own schedule.

    The prefix is a ``LinearLR`` from ``lr / (w + 1)`` to ``lr`` over
    ``w = config.warmup_epochs`` epochs, so epoch ``k < w`` trains at
    ``lr * (k + 1) / (w + 1)``. The main scheduler is created at the start of
    epoch ``w`` (``ReduceLROnPlateau`` and ``CyclicLR`` cannot go inside
    ``SequentialLR``); its own epoch 0 is the trial's epoch ``w``. ``CyclicLR``
    is stepped after every batch, the others after every epoch.

    Call :meth:`start_epoch` before an epoch's first batch, :meth:`after_batch`
    after each optimizer step and :meth:`end_epoch` with the epoch's objective.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: TrialConfig,
        *,
        direction: Literal["maximize", "minimize"],
        batches_per_epoch: int,
    ) -> None:
        self._optimizer = optimizer
        self._config = config
        self._direction = direction
        self._batches_per_epoch = batches_per_epoch
        self._warmup: lr_scheduler.LinearLR | None = None
        self._main: lr_scheduler.LRScheduler | None = None
        if config.warmup_epochs > 0:
            w = config.warmup_epochs
            self._warmup = lr_scheduler.LinearLR(
                optimizer, start_factor=1.0 / (w + 1), end_factor=1.0, total_iters=w
            )

    @property
    def lr(self) -> float:
        """The learning rate of the optimizer's first parameter group, right now."""
        return float(self._optimizer.param_groups[0]["lr"])

    def start_epoch(self, epoch: int) -> None:
        """Hand over from the warm-up prefix to the main schedule when ``epoch`` is due."""
        if self._main is None and epoch >= self._config.warmup_epochs:
            self._main = self._build_main()

    def after_batch(self) -> None:
        """Step a per-batch schedule (``CyclicLR``)."""
        if isinstance(self._main, lr_scheduler.CyclicLR):
            self._main.step()

    def end_epoch(self, objective: float) -> None:
        """Step the per-epoch schedule that is active; plateau reads ``objective``."""
        if self._main is None:
            if self._warmup is not None:
                self._warmup.step()
        elif isinstance(self._main, lr_scheduler.ReduceLROnPlateau):
            self._main.step(objective)
        elif not isinstance(self._main, lr_scheduler.CyclicLR):
            self._main.step()

    def _build_main(self) -> lr_scheduler.LRScheduler:
        opt, config, schedule = self._optimizer, self._config, self._config.schedule
        lr = config.learning_rate
        if isinstance(schedule, StepSchedule):
            return lr_scheduler.StepLR(opt, step_size=schedule.step_size, gamma=schedule.gamma)
        if isinstance(schedule, ExponentialSchedule):
            return lr_scheduler.ExponentialLR(opt, gamma=schedule.gamma)
        if isinstance(schedule, CosineSchedule):
            # The last epoch trains at the floor: T_max steps after warm-up's first epoch.
            t_max = max(1, config.max_epochs - config.warmup_epochs - 1)
            return lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=schedule.eta_min * lr)
        if isinstance(schedule, PlateauSchedule):
            return lr_scheduler.ReduceLROnPlateau(
                opt,
                mode="max" if self._direction == "maximize" else "min",
                factor=schedule.factor,
                patience=schedule.patience,
            )
        if isinstance(schedule, WarmupSchedule):
            return lr_scheduler.LinearLR(
                opt,
                start_factor=schedule.start_factor,
                end_factor=1.0,
                total_iters=schedule.ramp_epochs,
            )
        if isinstance(schedule, CyclicSchedule):
            step_size_up = schedule.step_size * self._batches_per_epoch
            return lr_scheduler.CyclicLR(
                opt,
                base_lr=lr,
                max_lr=schedule.max_lr * lr,
                step_size_up=step_size_up,
                mode=schedule.mode,
                # exp_range scales by gamma per batch: halve the amplitude every full cycle.
                gamma=math.pow(0.5, 1.0 / (2 * step_size_up)),
                cycle_momentum=False,
            )
        raise ValueError(f"unknown schedule {schedule!r}")
