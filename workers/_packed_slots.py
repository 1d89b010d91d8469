"""The per-trial part of a pack: initial weights, batch order, dropout masks and schedule.

Everything here follows the random sequence of one solo run
(:class:`workers.training._Run`) so that a slot trains as that run would.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from lrsearch.search_space import TrialConfig
from lrsearch.workers._packed_model import DropoutFn
from lrsearch.workers._schedules import LRSchedule
from lrsearch.workers.tasks import Task

__all__ = ["Slot", "dropout_fn", "epoch_lrs", "new_slot"]


@dataclass(eq=False)
class Slot:
    """One trial in a pack: everything that is not stacked.

    Attributes:
        key: The caller's name for the trial.
        config: Its configuration.
        epoch: Epochs run so far.
        order: Draws the batch order, as the solo run's generator.
        masks: Draws the dropout masks on CPU; it continues the global stream
            the solo run's ``nn.Dropout`` layers would draw from.
        rates: The rate of each dropout layer.
        shadow: An optimizer over one dummy tensor; its ``lr`` is driven by
            ``schedule`` and read before every batch.
        schedule: The trial's real learning-rate schedule.
        done: Finished or diverged; dropped from the pack at the next change.
    """

    key: Hashable
    config: TrialConfig
    epoch: int
    order: torch.Generator
    masks: torch.Generator | None
    shadow: torch.optim.Optimizer
    schedule: LRSchedule
    rates: list[float] = field(default_factory=list)
    done: bool = False


def new_slot(
    task: Task,
    key: Hashable,
    config: TrialConfig,
    seed: int,
    *,
    data_seed: int,
    device: torch.device,
    direction: Literal["maximize", "minimize"],
    batches: int,
) -> tuple[Slot, nn.Module]:
    """A trial's slot and its initial model, built by the solo run's random sequence.

    The global random states of torch and numpy are left as they were.
    """
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            task.load_data(data_seed)
            torch.manual_seed(seed)  # as the solo run: the same weights whether loading drew
            model = task.build_model(config.dropout, config.weight_init)
            masks = None
            if device.type == "cpu":
                masks = torch.Generator()
                masks.set_state(torch.get_rng_state())
    finally:
        np.random.set_state(numpy_state)
    order = torch.Generator(device=device)
    order.manual_seed(seed)
    shadow = torch.optim.SGD([torch.zeros(1)], lr=config.learning_rate)
    schedule = LRSchedule(shadow, config, direction=direction, batches_per_epoch=batches)
    return Slot(key, config, 0, order, masks, shadow, schedule), model


def epoch_lrs(slot: Slot, batches: int) -> list[float]:
    """The slot's lr at each batch of its next epoch, stepping its real schedule."""
    slot.schedule.start_epoch(slot.epoch)
    # The shadow's parameter has no gradient: this step changes nothing, but
    # marks the optimizer as stepped before its schedulers step.
    slot.shadow.step()
    lrs = []
    for _ in range(batches):
        lrs.append(slot.schedule.lr)
        slot.schedule.after_batch()
    return lrs


def dropout_fn(
    slots: list[Slot], device: torch.device, generator: torch.Generator
) -> DropoutFn | None:
    """Applies each slot's dropout masks to ``[K, B, ...]`` activations; ``None``: no dropout.

    On CPU each slot's mask is drawn from its own generator exactly as
    ``nn.Dropout`` draws it (``bernoulli(1 - p) / (1 - p)``), one draw per slot
    and layer. Elsewhere one draw from ``generator`` covers every slot.
    """
    if all(rate == 0 for slot in slots for rate in slot.rates):
        return None
    if device.type != "cpu":
        keep = torch.tensor(
            [[1 - slot.rates[i] for slot in slots] for i in range(len(slots[0].rates))],
            device=device,
        )

        def batched(layer: int, x: torch.Tensor) -> torch.Tensor:
            rate = keep[layer].view(-1, *([1] * (x.dim() - 1)))
            draw = torch.rand(x.shape, generator=generator, device=x.device)
            return x * ((draw < rate).to(x.dtype) / rate.to(x.dtype))

        return batched

    def exact(layer: int, x: torch.Tensor) -> torch.Tensor:
        masks = []
        for slot, rows in zip(slots, x.unbind(0), strict=True):
            rate = slot.rates[layer]
            if rate == 0:
                masks.append(torch.ones_like(rows))  # nn.Dropout(0) draws nothing
            else:
                noise = torch.empty_like(rows).bernoulli_(1 - rate, generator=slot.masks)
                masks.append(noise.div_(1 - rate))
        return x * torch.stack(masks)

    return exact
