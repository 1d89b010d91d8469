"""Packed training: several trials of one study trained as one program on one device.

Trials whose models have the same shape (same task, same batch size, same
optimizer) share a *pack*: their parameters are stacked along a leading slot
dimension and every minibatch runs one fused forward, backward and optimizer
step for all of them. Everything else stays per slot: weights, dropout rate and
masks, batch order, learning-rate schedule, weight decay, epoch counter and
epoch budget. On CPU a slot reproduces :func:`~workers.train_trial` with the
same seeds within float32 rounding.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from lrsearch.search_space import TrialConfig
from lrsearch.workers._errors import TrainingInterrupted
from lrsearch.workers._packed_model import PackedModel, plan_model
from lrsearch.workers._packed_optim import FusedOptimizer
from lrsearch.workers._packed_slots import Slot, dropout_fn, epoch_lrs, new_slot
from lrsearch.workers.device import autocast_context, resolve_device
from lrsearch.workers.tasks import Task
from lrsearch.workers.training import _EVAL_CHUNK, OBJECTIVES, TrainResult

__all__ = ["PackedRun", "SlotEpoch", "pack_key", "train_pack"]

# Per task object: the model structure for a dropout rate (None: not packable).
_SIGNATURES: weakref.WeakKeyDictionary[Task, dict[float, tuple[Hashable, ...] | None]] = (
    weakref.WeakKeyDictionary()
)


def pack_key(config: TrialConfig, task: Task) -> tuple[Hashable, ...] | None:
    """The settings that must match for trials to share a pack.

    Two trials can share a pack when their keys are equal: same task, same
    model structure, same batch size and same optimizer. Learning rate,
    schedule, dropout rate, weight init, weight decay and epoch budget may
    differ. The model is built once per task and dropout rate to read its
    structure (torch's random state is left as it was).

    Returns:
        The key, or ``None`` when the task's model cannot be packed (it is not
        an ``nn.Sequential`` of supported layers, it has buffers such as
        batch-norm statistics, or it cannot be built before the task's data is
        loaded): such a trial trains alone.
    """
    signature = _signature(task, config.dropout)
    if signature is None:
        return None
    return (task.name, signature, config.batch_size, config.optimizer)


def _signature(task: Task, dropout: float) -> tuple[Hashable, ...] | None:
    try:
        cached = _SIGNATURES.setdefault(task, {})
    except TypeError:  # a task that cannot be weakly referenced: no cache
        cached = {}
    if dropout not in cached:
        with torch.random.fork_rng(devices=[]):
            try:
                model = task.build_model(dropout, "default")
            except Exception:
                model = None
        plan = None if model is None else plan_model(model)
        cached[dropout] = None if plan is None else plan.signature
    return cached[dropout]


@dataclass
class SlotEpoch:
    """What one slot did in one epoch of :meth:`PackedRun.run_epoch`.

    Attributes:
        epoch: The 0-based epoch of this slot's trial.
        metrics: As the entries of :attr:`TrainResult.metrics`; ``None`` when
            the slot diverged.
        lr: The learning rate of the epoch's first batch (as ``lr_curve``).
        diverged: A loss of this slot became NaN or infinite.
        finished: This was the trial's last epoch (``max_epochs`` reached) or
            it diverged; the slot has been removed from the pack.
    """

    epoch: int
    metrics: dict[str, float] | None
    lr: float
    diverged: bool
    finished: bool


class PackedRun:
    """Trials of one study trained together, one fused program per minibatch.

    The first :meth:`add` fixes the pack's key (see :func:`pack_key`); every
    later trial must have the same key. Slots may join and leave between
    epochs and be at different epochs. On CPU each slot trains as
    :func:`~workers.train_trial` with the same ``seed`` and ``data_seed``
    would: same initial weights, batch order, dropout masks, learning rates and
    optimizer update, up to float32 rounding of the fused kernels. On other
    devices the dropout masks of all slots come from one generator of the
    pack (one kernel instead of one per slot), so there a slot with dropout
    trains like its solo run only in distribution, its masks depending on its
    pack-mates; without dropout it follows its solo run up to rounding.

    A slot that finishes (its ``max_epochs`` reached) or diverges leaves the
    pack by itself: it is no longer in :meth:`keys` nor counted by ``len``,
    but :meth:`state_of` still reads its final weights until the next
    :meth:`add` or :meth:`run_epoch` drops it. Removing it first is allowed.

    Args:
        task: Provides the data, loaded once with ``data_seed``, and the model.
        data_seed: The study's data seed, as in :func:`~workers.train_trial`.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"`` or a device.
        objective: The metric each slot's plateau schedule reads.
        direction: ``maximize`` or ``minimize``.
        bf16: bfloat16 autocast for the forward passes; only on CUDA.

    Raises:
        DeviceError: The device is unavailable or does not support bf16.
        ValueError: ``objective`` or ``direction`` is not a known name.
    """

    def __init__(
        self,
        task: Task,
        *,
        data_seed: int,
        device: torch.device | str = "cpu",
        objective: str = "val_accuracy",
        direction: str = "maximize",
        bf16: bool = False,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; use one of {list(OBJECTIVES)}")
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        self._direction: Literal["maximize", "minimize"] = (
            "maximize" if direction == "maximize" else "minimize"
        )
        self._device = resolve_device(device)
        autocast_context(self._device, bf16)  # fail before any work if bf16 is unsupported
        self._task = task
        self._data_seed = data_seed
        self._objective = objective
        self._bf16 = bf16
        numpy_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
                data = task.load_data(data_seed)
        finally:
            np.random.set_state(numpy_state)
        self._x_train = data.x_train.to(self._device)
        self._y_train = data.y_train.to(self._device)
        self._x_val = data.x_val.to(self._device)
        self._y_val = data.y_val.to(self._device)
        self._slots: list[Slot] = []
        self._key: tuple[Hashable, ...] | None = None
        self._plan: PackedModel | None = None
        self._flat: torch.Tensor | None = None  # [K, P], one row per slot
        self._optimizer: FusedOptimizer | None = None
        self._masks = torch.Generator(device=self._device)
        self._masks.manual_seed(data_seed)

    def add(self, key: Hashable, config: TrialConfig, seed: int) -> None:
        """Add a trial between epochs; it starts at its epoch 0.

        Args:
            key: How the caller names the trial (unique in the pack).
            config: The trial's configuration.
            seed: Its training seed, as given to :func:`~workers.train_trial`.

        Raises:
            ValueError: ``key`` is already in the pack, the trial cannot be
                packed, or its :func:`pack_key` differs from the pack's.
        """
        self._purge()
        if any(slot.key == key for slot in self._slots):
            raise ValueError(f"trial {key!r} is already in the pack")
        wanted = pack_key(config, self._task)
        if wanted is None:
            raise ValueError(f"the model of task {self._task.name!r} cannot be packed")
        if self._key is not None and wanted != self._key:
            named = ("task", "model structure", "batch size", "optimizer")
            differ = [
                f"{name} {mine!r} (the pack's: {theirs!r})" if name != "model structure" else name
                for name, mine, theirs in zip(named, wanted, self._key, strict=True)
                if mine != theirs
            ]
            raise ValueError(f"trial {key!r} does not fit the pack: {'; '.join(differ)} differ")
        slot, model = new_slot(
            self._task,
            key,
            config,
            seed,
            data_seed=self._data_seed,
            device=self._device,
            direction=self._direction,
            batches=self._batches(config),
        )
        plan = plan_model(model)
        if plan is None or plan.signature != wanted[1]:
            raise ValueError(f"the model of task {self._task.name!r} changed shape")
        if self._plan is None or self._flat is None or self._optimizer is None:
            self._key, self._plan = wanted, plan
            self._flat = torch.zeros(0, plan.row_size, device=self._device)
            self._optimizer = FusedOptimizer(config.optimizer, plan.row_size, self._device)
        row = plan.flatten(model).to(self._device).unsqueeze(0)
        self._flat = torch.cat([self._flat.detach(), row]).requires_grad_()
        self._optimizer.add_row(config.weight_decay)
        slot.rates = plan.dropout_rates(model)
        self._slots.append(slot)

    def _batches(self, config: TrialConfig) -> int:
        return math.ceil(self._x_train.shape[0] / config.batch_size)

    def remove(self, key: Hashable) -> None:
        """Free a slot (pruned, handed back); a key no longer in the pack is ignored."""
        keep = [i for i, slot in enumerate(self._slots) if slot.key != key]
        if len(keep) < len(self._slots):
            self._keep(keep)

    def _keep(self, index: list[int]) -> None:
        if self._flat is None or self._optimizer is None:
            return
        rows = torch.tensor(index, dtype=torch.long, device=self._device)
        self._flat = self._flat.detach().index_select(0, rows).requires_grad_()
        self._optimizer.keep_rows(index)
        self._slots = [self._slots[i] for i in index]
        if not self._slots:  # an empty pack takes any compatible trial next
            self._key = self._plan = self._flat = self._optimizer = None

    def _purge(self) -> None:
        """Drop the slots that finished in the last epoch."""
        keep = [i for i, slot in enumerate(self._slots) if not slot.done]
        if len(keep) < len(self._slots):
            self._keep(keep)

    def keys(self) -> list[Hashable]:
        """The keys of the slots still training, in slot order."""
        return [slot.key for slot in self._slots if not slot.done]

    def epoch_of(self, key: Hashable) -> int:
        """The number of epochs the slot ``key`` has run."""
        return self._slot(key).epoch

    def __contains__(self, key: object) -> bool:
        return any(slot.key == key and not slot.done for slot in self._slots)

    def __len__(self) -> int:
        return sum(1 for slot in self._slots if not slot.done)

    def _slot(self, key: Hashable) -> Slot:
        for slot in self._slots:
            if slot.key == key:
                return slot
        raise KeyError(key)

    def run_epoch(
        self, stop_requested: Callable[[], bool] | None = None
    ) -> dict[Hashable, SlotEpoch]:
        """Train every slot one epoch (each at its own epoch), evaluate, step the schedules.

        Reads the device once. Slots that finished or diverged leave the pack
        (see the class description).

        Args:
            stop_requested: Polled before the epoch; when it returns true,
                :class:`~workers.TrainingInterrupted` is raised (with the
                fewest epochs any slot has run) and nothing changes.

        Returns:
            What each slot did, by key; empty for an empty pack.
        """
        if stop_requested is not None and stop_requested():
            raise TrainingInterrupted(min((s.epoch for s in self._slots if not s.done), default=0))
        self._purge()
        if not self._slots or self._plan is None or self._flat is None:
            return {}
        started = time.perf_counter()
        lrs = [epoch_lrs(slot, self._batches(slot.config)) for slot in self._slots]
        train_sum = self._train_epoch(lrs)
        val_sum, correct = self._evaluate()
        n_train, n_val = self._x_train.shape[0], self._x_val.shape[0]
        train_sums, val_sums, corrects = torch.stack((train_sum, val_sum, correct)).tolist()
        seconds = time.perf_counter() - started
        report: dict[Hashable, SlotEpoch] = {}
        for i, slot in enumerate(self._slots):
            train_loss, val_loss = train_sums[i] / n_train, val_sums[i] / n_val
            diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
            metrics = None
            if not diverged:
                metrics = {
                    "epoch": slot.epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_accuracy": corrects[i] / n_val,
                    "lr": lrs[i][0],
                    "seconds": seconds,
                }
                slot.schedule.end_epoch(metrics[self._objective])
            epoch = slot.epoch
            slot.epoch += 1
            finished = diverged or slot.epoch >= slot.config.max_epochs
            report[slot.key] = SlotEpoch(epoch, metrics, lrs[i][0], diverged, finished)
            slot.done = finished
        return report

    def _train_epoch(self, lrs: list[list[float]]) -> torch.Tensor:
        """One shuffled pass for every slot; the per-slot sum of batch loss x batch size."""
        assert self._plan is not None
        assert self._flat is not None
        assert self._optimizer is not None
        plan, optimizer, flat = self._plan, self._optimizer, self._flat
        k, n = len(self._slots), self._x_train.shape[0]
        size = self._slots[0].config.batch_size
        scalars = optimizer.epoch_scalars(lrs)
        orders = torch.stack(
            [torch.randperm(n, generator=slot.order, device=self._device) for slot in self._slots]
        )
        total = torch.zeros(k, device=self._device)
        dropout = dropout_fn(self._slots, self._device, self._masks)
        for batch, start in enumerate(range(0, n, size)):
            index = orders[:, start : start + size]
            flat.grad = None
            with autocast_context(self._device, self._bf16):
                logits = plan.forward(flat, self._x_train[index], shared=False, dropout=dropout)
            classes = logits.shape[-1]
            losses = (
                F.cross_entropy(
                    logits.float().reshape(-1, classes),
                    self._y_train[index].reshape(-1),
                    reduction="none",
                )
                .view(k, -1)
                .mean(dim=1)
            )
            # Each slot's gradient only reaches its own row: a NaN stays in its slot.
            torch.autograd.backward(losses.sum())
            assert flat.grad is not None
            optimizer.step(flat.detach(), flat.grad, batch, scalars)
            total += losses.detach() * index.shape[1]
        flat.grad = None
        return total

    def _evaluate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-slot sum of validation losses and count of correct predictions, in eval mode."""
        assert self._plan is not None
        assert self._flat is not None
        k, n = len(self._slots), self._x_val.shape[0]
        chunk = max(1, _EVAL_CHUNK // k)
        loss = torch.zeros(k, device=self._device)
        correct = torch.zeros(k, device=self._device)
        with torch.inference_mode():
            for start in range(0, n, chunk):
                x = self._x_val[start : start + chunk]
                y = self._y_val[start : start + chunk]
                with autocast_context(self._device, self._bf16):
                    logits = self._plan.forward(self._flat, x, shared=True, dropout=None).float()
                classes = logits.shape[-1]
                loss += (
                    F.cross_entropy(logits.reshape(-1, classes), y.repeat(k), reduction="none")
                    .view(k, -1)
                    .sum(dim=1)
                )
                correct += (logits.argmax(dim=-1) == y).sum(dim=1)
        return loss, correct

    def state_of(self, key: Hashable) -> dict[str, torch.Tensor]:
        """A slot's weights as a plain ``state_dict`` of the task's model.

        Copies, on the pack's device. Also the final weights of a slot that
        finished in the last epoch.

        Raises:
            KeyError: ``key`` is not in the pack.
        """
        every = [slot.key for slot in self._slots]
        if key not in every or self._plan is None or self._flat is None:
            raise KeyError(key)
        return self._plan.unflatten(self._flat[every.index(key)])

    def release(self) -> None:
        """Drop every tensor the pack holds (the data included); the pack is unusable after."""
        if self._optimizer is not None:
            self._optimizer.release()
        self._slots = []
        self._key = self._plan = self._flat = self._optimizer = None
        for name in ("_x_train", "_y_train", "_x_val", "_y_val"):
            self.__dict__.pop(name, None)


def train_pack(
    configs: Sequence[TrialConfig],
    task: Task,
    *,
    seeds: Sequence[int],
    data_seed: int,
    objective: str = "val_accuracy",
    direction: str = "maximize",
    device: torch.device | str = "cpu",
) -> list[TrainResult]:
    """Run the given trials to completion as one pack, without pruning.

    Args:
        configs: The trials; they must share one :func:`pack_key`.
        task: Their task.
        seeds: One training seed per trial.
        data_seed: The split, as in :func:`~workers.train_trial`.
        objective: The metric each result's ``value`` holds.
        direction: Sets the plateau schedules' mode.
        device: Where the pack trains.

    Returns:
        One result per trial, in order, as :func:`~workers.train_trial` would
        give (``status`` ``"complete"`` or ``"diverged"``).

    Raises:
        ValueError: The lengths differ or the trials do not share a pack key.
    """
    if len(configs) != len(seeds):
        raise ValueError(f"{len(configs)} configs but {len(seeds)} seeds")
    pack = PackedRun(
        task, data_seed=data_seed, device=device, objective=objective, direction=direction
    )
    results = [TrainResult(value=None, epochs_run=0) for _ in configs]
    by_key: dict[Hashable, TrainResult] = dict(enumerate(results))
    try:
        for index, (config, seed) in enumerate(zip(configs, seeds, strict=True)):
            pack.add(index, config, seed)
        while len(pack):
            for key, done in pack.run_epoch().items():
                result = by_key[key]
                result.lr_curve.append(done.lr)
                result.epochs_run += 1
                if done.metrics is None:
                    result.status, result.value = "diverged", None
                else:
                    result.metrics.append(done.metrics)
                    result.value = done.metrics[objective]
    finally:
        pack.release()
    return results
