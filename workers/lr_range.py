"""The learning-rate range test (L. N. Smith, "Cyclical Learning Rates", 2017).

Train one model briefly while the learning rate grows exponentially from
``start_lr`` to ``end_lr``, one step per batch, and record the loss of every
batch. The loss is smoothed with a bias-corrected exponential moving average,
because a single batch's loss is too noisy to compare neighbouring steps.

How the bounds are chosen (the rule the tests check):

* The test stops early once the smoothed loss exceeds ``diverge_factor`` times
  its minimum so far, or is not finite: past that point the curve only says
  "too high", and training on costs time.
* ``high`` is the learning rate at the minimum smoothed loss: above it the loss
  stops falling, which is where training starts to fail.
* ``steepest`` is the learning rate where the smoothed loss falls fastest per
  decade of learning rate (the most negative slope vs ``log10(lr)``), searched
  below ``high``.
* ``low`` is where the fall first reaches half that steepest slope, so the range
  covers the whole fast-falling stretch, widened downwards to at least
  ``min_decades`` decades below ``high``: a search needs room on the low side,
  where training is slow but safe, far more than on the high side.

* The curve is *flat* when the smoothed loss never fell ``FLAT_FALL`` (10%)
  below where it started: no learning rate in the sweep trained, so the bounds
  say nothing (a hard task needs more batches). ``flat`` says so; an ``auto``
  study then repeats the test with four times the batches, up to
  ``MAX_AUTO_BATCHES``, and fails its trial with that reason if the curve stays
  flat, rather than sampling from noise.

The model, data and optimizer come from the workers' own builders (the task's
``load_data``/``build_model`` and :func:`build_optimizer`), so the test measures
exactly what a trial will train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from lrsearch import storage
from lrsearch.search_space import StudyDefinition, TrialConfig
from lrsearch.workers._schedules import build_optimizer
from lrsearch.workers.device import resolve_device
from lrsearch.workers.tasks import Task

__all__ = [
    "DEFAULT_BATCHES",
    "FLAT_FALL",
    "MAX_AUTO_BATCHES",
    "RangeTestResult",
    "choose_bounds",
    "lr_range_test",
    "resolve_auto_learning_rate",
]

DEFAULT_BATCHES = 150
DEFAULT_START_LR = 1e-6
DEFAULT_END_LR = 10.0
DEFAULT_BATCH_SIZE = 64
# Bias-corrected EMA weight of the past; 0.9 averages over ~10 batches, enough to
# see through batch noise at 150 steps without lagging the divergence by much.
SMOOTHING = 0.9
DIVERGE_FACTOR = 4.0
MIN_DECADES = 1.0
# A curve that never fell this fraction below its start carries no range.
FLAT_FALL = 0.10
# spirals-mlp needs about 1,000 batches to leave chance level; digits 150.
MAX_AUTO_BATCHES = 2400


@dataclass(frozen=True)
class RangeTestResult:
    """The curve of one range test and the bounds chosen from it.

    Attributes:
        lrs: The learning rate of each batch run.
        losses: The smoothed training loss after each batch.
        low: Lower bound of the chosen range.
        high: Upper bound: the learning rate at the minimum smoothed loss.
        steepest: Where the smoothed loss fell fastest per decade.
        diverged: Whether the test stopped early on a rising or non-finite loss.
        settings: What the test ran with (task, batch size, optimizer, ...).
    """

    lrs: list[float]
    losses: list[float]
    low: float
    high: float
    steepest: float
    diverged: bool
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def flat(self) -> bool:
        """The smoothed loss never fell ``FLAT_FALL`` below its start: the bounds say nothing."""
        finite = [loss for loss in self.losses if math.isfinite(loss)]
        return not finite or min(finite) > (1.0 - FLAT_FALL) * finite[0]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what is stored with an ``auto`` study and printed by ``--json``)."""
        return {
            "low": self.low,
            "high": self.high,
            "steepest": self.steepest,
            "diverged": self.diverged,
            "flat": self.flat,
            "batches": len(self.lrs),
            "lrs": self.lrs,
            "losses": self.losses,
            "settings": self.settings,
        }


def choose_bounds(
    lrs: list[float], losses: list[float], *, min_decades: float = MIN_DECADES
) -> tuple[float, float, float]:
    """``(low, high, steepest)`` from a smoothed range-test curve (rule in the module doc).

    Raises:
        ValueError: Fewer than 3 finite points, or lrs and losses of different lengths.
    """
    if len(lrs) != len(losses):
        raise ValueError(f"{len(lrs)} learning rates but {len(losses)} losses")
    points = [(lr, loss) for lr, loss in zip(lrs, losses, strict=True) if math.isfinite(loss)]
    if len(points) < 3:
        raise ValueError("a range test needs at least 3 finite losses to choose bounds")
    log_lr = np.log10([p[0] for p in points])
    loss = np.array([p[1] for p in points])
    best = int(np.argmin(loss))
    high = float(points[best][0])
    if best < 2:
        # The loss never fell: only "below the start" is known to be safe.
        low = high / 10**min_decades
        return low, high, high
    slopes = np.gradient(loss[: best + 1], log_lr[: best + 1])
    steep = int(np.argmin(slopes))
    low_index = steep
    while low_index > 0 and slopes[low_index - 1] <= slopes[steep] / 2:
        low_index -= 1
    low = min(float(points[low_index][0]), high / 10**min_decades)
    return low, high, float(points[steep][0])


def lr_range_test(
    task: Task,
    *,
    batches: int = DEFAULT_BATCHES,
    start_lr: float = DEFAULT_START_LR,
    end_lr: float = DEFAULT_END_LR,
    batch_size: int = DEFAULT_BATCH_SIZE,
    optimizer: str = "sgd",
    weight_init: str = "default",
    data_seed: int = 0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    diverge_factor: float = DIVERGE_FACTOR,
) -> RangeTestResult:
    """Run the range test on ``task`` and choose bounds (see the module doc).

    Args:
        task: Supplies the data (split by ``data_seed``) and the model.
        batches: At most this many optimizer steps (fewer when it diverges).
        start_lr: The first batch's learning rate.
        end_lr: The last batch's learning rate; each step multiplies by
            ``(end_lr / start_lr) ** (1 / (batches - 1))``.
        batch_size: Examples per step; the training split is cycled if too small.
        optimizer: Which optimizer a trial would use (built by the workers' builder).
        weight_init: The model's initialisation.
        data_seed: The task's train/validation split.
        seed: Seeds the weights and the batch order.
        device: Where to train.
        diverge_factor: Stop once the smoothed loss exceeds this times its minimum.

    Raises:
        ValueError: ``batches < 3``, ``start_lr >= end_lr`` or a non-positive rate.
    """
    if batches < 3:
        raise ValueError(f"a range test needs at least 3 batches, got {batches}")
    if not 0.0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    dev = resolve_device(device)
    settings: dict[str, Any] = {
        "task": getattr(task, "name", type(task).__name__),
        "batch_size": batch_size,
        "optimizer": optimizer,
        "start_lr": start_lr,
        "end_lr": end_lr,
        "max_batches": batches,
        "data_seed": data_seed,
        "seed": seed,
    }
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        data = task.load_data(data_seed)
        torch.manual_seed(seed)
        model = task.build_model(0.0, weight_init).to(dev)
        config = TrialConfig.model_validate(
            {
                "schedule": {"type": "step", "step_size": 1, "gamma": 1.0},
                "learning_rate": start_lr,
                "batch_size": batch_size,
                "dropout": 0.0,
                "weight_init": weight_init,
                "optimizer": optimizer,
                "max_epochs": 1,
            }
        )
        opt = build_optimizer(model.parameters(), config)
        x, y = data.x_train.to(dev), data.y_train.to(dev)
        generator = torch.Generator(device=dev)
        generator.manual_seed(seed)
        lrs, losses, diverged = _sweep(
            model, opt, x, y, generator, batches, (start_lr, end_lr), batch_size, diverge_factor
        )
    low, high, steepest = choose_bounds(lrs, losses)
    return RangeTestResult(lrs, losses, low, high, steepest, diverged, settings)


def _sweep(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    batches: int,
    lr_span: tuple[float, float],
    batch_size: int,
    diverge_factor: float,
) -> tuple[list[float], list[float], bool]:
    start_lr, end_lr = lr_span
    factor = (end_lr / start_lr) ** (1.0 / (batches - 1))
    n = x.shape[0]
    order = torch.randperm(n, generator=generator, device=x.device)
    position = 0
    lrs: list[float] = []
    losses: list[float] = []
    average, best = 0.0, math.inf
    model.train()
    for step in range(batches):
        lr = start_lr * factor**step
        for group in opt.param_groups:
            group["lr"] = lr
        if position + batch_size > n:
            order = torch.randperm(n, generator=generator, device=x.device)
            position = 0
        index = order[position : position + batch_size]
        position += batch_size
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[index]), y[index])
        torch.autograd.backward(loss)
        opt.step()
        value = float(loss.item())
        if not math.isfinite(value):
            return lrs, losses, True
        average = SMOOTHING * average + (1.0 - SMOOTHING) * value
        smoothed = average / (1.0 - SMOOTHING ** (step + 1))
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if step > 0 and smoothed > diverge_factor * best:
            return lrs, losses, True
    return lrs, losses, False


def resolve_auto_learning_rate(
    backend: storage.Backend,
    record: storage.StudyRecord,
    task: Task,
    *,
    device: torch.device | str = "cpu",
) -> StudyDefinition:
    """The definition a worker samples: an ``auto`` study's, inside its stored bounds.

    The first worker to get here for a study runs the range test (bounded by
    :data:`DEFAULT_BATCHES`) with the study's data split, middle batch size and
    first optimizer, and stores the result (``storage.store_lr_range``: first
    writer wins). Every later call reads the stored bounds. A study that is not
    ``auto`` is returned unchanged.
    """
    definition = record.definition
    if not definition.learning_rate_auto:
        return definition
    stored = storage.stored_lr_range(backend, record.study_id)
    if stored is None:
        space = definition.search_space
        sizes = sorted(space.batch_size)
        batches = DEFAULT_BATCHES
        while True:
            found = lr_range_test(
                task,
                batches=batches,
                batch_size=sizes[len(sizes) // 2],
                optimizer=space.optimizer[0] if space.optimizer else "sgd",
                data_seed=definition.data_seed,
                device=device,
            )
            if not found.flat:
                break
            if batches >= MAX_AUTO_BATCHES:
                raise ValueError(
                    f"learning_rate: auto: the range test's loss stayed flat over "
                    f"{batches} batches (no learning rate from {DEFAULT_START_LR:g} to "
                    f"{DEFAULT_END_LR:g} trained): give the study a learning_rate range"
                )
            batches = min(4 * batches, MAX_AUTO_BATCHES)
        # high <= end_lr (10): always inside what a definition may ask for.
        stored = storage.store_lr_range(backend, record.study_id, found.to_json())
    low, high = storage.lr_range_bounds(stored)
    return definition.with_learning_rate(low, high)
