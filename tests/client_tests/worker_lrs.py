"""The learning rates a built-in worker would train a trial with, to compare integrations to."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lrsearch.client import Trial
from lrsearch.workers._schedules import LRSchedule, build_optimizer


def worker_lrs(trial: Trial, values: list[float], steps_per_epoch: int) -> list[float]:
    """The LR of every batch, with the schedule calls of a built-in worker's epoch loop.

    Args:
        trial: The claimed trial.
        values: The objective of each epoch (a plateau schedule reads them).
        steps_per_epoch: Optimizer steps per epoch.
    """
    config = trial.trial_config()
    weight = nn.Parameter(torch.zeros(1))
    weight.grad = torch.zeros(1)
    optimizer = build_optimizer([weight], config)
    direction: Literal["maximize", "minimize"] = (
        "maximize" if trial.direction == "maximize" else "minimize"
    )
    schedule = LRSchedule(optimizer, config, direction=direction, batches_per_epoch=steps_per_epoch)
    lrs = []
    for epoch, value in enumerate(values):
        schedule.start_epoch(epoch)
        for _ in range(steps_per_epoch):
            lrs.append(schedule.lr)
            optimizer.step()
            schedule.after_batch()
        schedule.end_epoch(value)
    return lrs
