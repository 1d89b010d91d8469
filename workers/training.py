"""The PyTorch training loop of one trial: train, evaluate, report, prune.

The whole dataset is moved to the device once per trial and minibatches are
taken by indexing on-device tensors, so there is no host-to-device copy per
batch and no ``DataLoader``. Metrics are accumulated on the device and read
back once per epoch.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import optuna
import torch
import torch.nn.functional as F  # noqa: N812

from lrsearch.search_space import TrialConfig
from lrsearch.workers._errors import TrainingInterrupted
from lrsearch.workers._schedules import LRSchedule, build_optimizer
from lrsearch.workers.device import autocast_context, resolve_device
from lrsearch.workers.tasks import Task, TaskData

__all__ = ["OBJECTIVES", "TrainResult", "train_seed", "train_trial"]

OBJECTIVES = ("val_accuracy", "val_loss", "train_loss")
_EVAL_CHUNK = 4096

Status = Literal["complete", "pruned", "diverged"]
Direction = Literal["maximize", "minimize"]


@dataclass
class TrainResult:
    """The outcome of :func:`train_trial`.

    Attributes:
        value: The objective at the last epoch run; ``None`` when diverged.
        epochs_run: Epochs trained, the diverged one included.
        lr_curve: The learning rate the optimizer used in each epoch run, read
            from ``param_groups[0]["lr"]`` before the epoch's first batch.
        metrics: Per evaluated epoch: ``epoch`` (0-based), ``train_loss``,
            ``val_loss``, ``val_accuracy``, ``lr`` and ``seconds``. A diverged
            epoch has no entry (its losses are not finite).
        status: ``"complete"``, ``"pruned"`` (the trial's pruner stopped it) or
            ``"diverged"`` (a loss became NaN or infinite).
    """

    value: float | None
    epochs_run: int
    lr_curve: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    status: Status = "complete"


def train_seed(data_seed: int, trial_number: int) -> int:
    """The training seed (init, dropout, batch order) of one trial of a study.

    Derived from the study's ``data_seed`` and the trial's number only, never
    from global state, the sampler seed or the worker: the same trial number
    trains the same way in a replay, on any worker, while two trials of a study
    do not share one (possibly lucky) initialisation.
    """
    return int(np.random.SeedSequence([data_seed, trial_number]).generate_state(1)[0])


def train_trial(
    config: TrialConfig,
    task: Task,
    *,
    objective: str = "val_accuracy",
    direction: str = "maximize",
    trial: optuna.trial.BaseTrial | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    data_seed: int | None = None,
    bf16: bool = False,
    stop_requested: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ``task``'s model with ``config`` and report the objective every epoch.

    Same ``config``, ``data_seed`` and ``seed`` give identical results on CPU. The
    global RNG states of torch and numpy are restored afterwards.

    Args:
        config: The trial's hyperparameters and epoch budget.
        task: Provides the data (split by ``data_seed``) and the model.
        objective: The metric reported and returned: ``val_accuracy``,
            ``val_loss`` or ``train_loss``.
        direction: ``maximize`` or ``minimize``; sets the plateau schedule's mode.
        trial: When given, ``report(value, epoch)`` then ``should_prune()`` after
            every epoch; a prune ends training with status ``"pruned"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"`` or a device.
        seed: Seeds the weight init, dropout and batch order.
        data_seed: Fixes the task's train/validation split (and generated
            data); ``None`` uses ``seed``. Give every trial of a study the same
            data seed to compare them on one split.
        bf16: bfloat16 autocast for the forward passes; only on CUDA.
        stop_requested: Polled before each epoch; when it returns true,
            :class:`~workers.TrainingInterrupted` is raised.

    Returns:
        The result; divergence and pruning are results, not exceptions.

    Raises:
        TrainingInterrupted: ``stop_requested()`` returned true.
        DeviceError: The device is unavailable or does not support bf16.
        ValueError: ``objective`` or ``direction`` is not one of the names above.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use one of {list(OBJECTIVES)}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    resolved: Direction = "maximize" if direction == "maximize" else "minimize"
    dev = resolve_device(device)
    autocast_context(dev, bf16)  # fail before any work if bf16 is unsupported
    numpy_state = np.random.get_state()
    run: _Run | None = None
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            split = seed if data_seed is None else data_seed
            run = _Run(config, task, dev, (seed, split), bf16, resolved)
            return run.loop(objective, trial, stop_requested)
    except BaseException as exc:
        # The traceback keeps every inner frame's locals (model, batches, activations)
        # alive; clear them so a caller handling CUDA OOM gets the memory back.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        if run is not None:
            run.release()
        del run
        np.random.set_state(numpy_state)


class _Run:
    """The state of one training run; :meth:`release` drops every tensor it holds."""

    def __init__(
        self,
        config: TrialConfig,
        task: Task,
        device: torch.device,
        seeds: tuple[int, int],
        bf16: bool,
        direction: Direction,
    ) -> None:
        seed, data_seed = seeds
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        data: TaskData = task.load_data(data_seed)
        torch.manual_seed(seed)  # the same weights whether or not loading drew numbers
        self.config = config
        self.device = device
        self.bf16 = bf16
        self.x_train = data.x_train.to(device)
        self.y_train = data.y_train.to(device)
        self.x_val = data.x_val.to(device)
        self.y_val = data.y_val.to(device)
        self.model: torch.nn.Module = task.build_model(config.dropout, config.weight_init).to(
            device
        )
        self.optimizer = build_optimizer(self.model.parameters(), config)
        self.batches = math.ceil(self.x_train.shape[0] / config.batch_size)
        self.schedule = LRSchedule(
            self.optimizer,
            config,
            direction=direction,
            batches_per_epoch=self.batches,
        )
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def loop(
        self,
        objective: str,
        trial: optuna.trial.BaseTrial | None,
        stop_requested: Callable[[], bool] | None,
    ) -> TrainResult:
        result = TrainResult(value=None, epochs_run=0)
        for epoch in range(self.config.max_epochs):
            if stop_requested is not None and stop_requested():
                raise TrainingInterrupted(epoch)
            self.schedule.start_epoch(epoch)
            lr = self.schedule.lr
            result.lr_curve.append(lr)
            started = time.perf_counter()
            train_loss = self._train_epoch()
            result.epochs_run += 1
            if not math.isfinite(train_loss):
                return _diverged(result)
            val_loss, val_accuracy = self._evaluate()
            if not math.isfinite(val_loss):
                return _diverged(result)
            metrics = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "lr": lr,
                "seconds": time.perf_counter() - started,
            }
            result.metrics.append(metrics)
            result.value = metrics[objective]
            if trial is not None:
                trial.report(result.value, epoch)
                if trial.should_prune():
                    result.status = "pruned"
                    return result
            self.schedule.end_epoch(result.value)
        return result

    def _train_epoch(self) -> float:
        """One pass over the shuffled training split; the mean loss (one device sync)."""
        n = self.x_train.shape[0]
        size = self.config.batch_size
        order = torch.randperm(n, generator=self.generator, device=self.device)
        total = torch.zeros((), device=self.device)
        self.model.train()
        for start in range(0, n, size):
            index = order[start : start + size]
            self.optimizer.zero_grad(set_to_none=True)
            with autocast_context(self.device, self.bf16):
                logits = self.model(self.x_train[index])
            loss = F.cross_entropy(logits.float(), self.y_train[index])
            torch.autograd.backward(loss)
            self.optimizer.step()
            self.schedule.after_batch()
            total += loss.detach() * index.numel()
        return float(total.item()) / n

    def _evaluate(self) -> tuple[float, float]:
        """Mean validation loss and accuracy, in eval mode (no dropout)."""
        n = self.x_val.shape[0]
        self.model.eval()
        loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        with torch.inference_mode():
            for start in range(0, n, _EVAL_CHUNK):
                x = self.x_val[start : start + _EVAL_CHUNK]
                y = self.y_val[start : start + _EVAL_CHUNK]
                with autocast_context(self.device, self.bf16):
                    logits = self.model(x).float()
                loss += F.cross_entropy(logits, y, reduction="sum")
                correct += (logits.argmax(dim=1) == y).sum()
            loss_sum, n_correct = torch.stack((loss, correct)).tolist()
        return loss_sum / n, n_correct / n

    def release(self) -> None:
        """Drop the model, optimizer and on-device data so their memory can be freed."""
        for name in ("model", "optimizer", "schedule", "x_train", "y_train", "x_val", "y_val"):
            self.__dict__.pop(name, None)


def _diverged(result: TrainResult) -> TrainResult:
    result.status = "diverged"
    result.value = None
    return result
