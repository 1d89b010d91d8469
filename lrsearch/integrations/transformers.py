"""Hugging Face Transformers: run a claimed trial inside a ``Trainer``.

Needs ``transformers`` and ``accelerate`` (``pip install 'lrsearch[transformers]'``)::

    from lrsearch.integrations import transformers as lrs

    for trial in study.trials():
        model = build_model(trial)
        args = TrainingArguments(..., num_train_epochs=trial.max_epochs,
                                 per_device_train_batch_size=trial.batch_size,
                                 eval_strategy="epoch")
        trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=...,
                          compute_metrics=...,
                          optimizers=lrs.trial_optimizers(trial, model, steps_per_epoch=n),
                          callbacks=[lrs.LrsearchCallback(trial)])
        trainer.train()

The ``Trainer`` calls ``lr_scheduler.step()`` after every optimizer step; the
scheduler of :func:`trial_optimizers` turns that into the schedule's per-batch
and per-epoch steps, so the optimizer sees the learning rates a built-in
worker would use. :class:`LrsearchCallback` reports after each evaluation and
sets ``control.should_training_stop`` when the trial is pruned or lost.

This module imports the ``transformers`` library (absolute imports: its own
name does not shadow it).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from lrsearch.client import Trial
from lrsearch.integrations._scheduler import TrialLRScheduler

__all__ = ["LrsearchCallback", "TrialLRScheduler", "trial_optimizers"]


def trial_optimizers(
    trial: Trial,
    model: torch.nn.Module,
    *,
    steps_per_epoch: int,
) -> tuple[torch.optim.Optimizer, TrialLRScheduler]:
    """The trial's optimizer and schedule, for ``Trainer(optimizers=...)``.

    Args:
        trial: The claimed trial.
        model: The model to train.
        steps_per_epoch: Optimizer steps per epoch:
            ``ceil(len(train_dataset) / batch_size / gradient_accumulation_steps)``.
    """
    optimizer = trial.optimizer(model.parameters())
    scheduler = TrialLRScheduler(trial, optimizer, steps_per_epoch=steps_per_epoch)
    return optimizer, scheduler


class LrsearchCallback(TrainerCallback):  # type: ignore[misc,unused-ignore]
    """Report ``metric`` after each evaluation; stop the training when told to.

    Evaluate once per epoch (``eval_strategy="epoch"``): a trial's reports are
    per epoch, and a plateau schedule needs each epoch's objective.

    Args:
        trial: The claimed trial (from ``study.trials()``).
        metric: The key in the evaluation metrics; default ``eval_`` + ``trial.objective``.
    """

    def __init__(self, trial: Trial, metric: str | None = None) -> None:
        self.trial = trial
        # The Trainer prefixes every evaluation metric with "eval_".
        objective = trial.objective
        default = objective if objective.startswith("eval_") else f"eval_{objective}"
        self.metric = metric or default
        self._epoch = -1
        self._epoch_start_step = 0

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if str(args.eval_strategy) not in {"epoch", "IntervalStrategy.EPOCH"}:
            raise ValueError(
                "LrsearchCallback: set TrainingArguments(eval_strategy='epoch'): "
                "the trial reports once per epoch"
            )

    def on_epoch_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self._epoch += 1
        self._epoch_start_step = state.global_step
        self.trial.start_epoch(self._epoch)

    def on_epoch_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(lr_scheduler, TrialLRScheduler) or control.should_training_stop:
            return
        # A wrong steps_per_epoch would shift every later epoch's schedule: refuse it.
        ended = lr_scheduler.last_epoch + (1 if lr_scheduler.awaiting_value else 0)
        if ended != self._epoch + 1 or lr_scheduler.mid_epoch:
            steps = state.global_step - self._epoch_start_step
            raise ValueError(
                f"trial_optimizers(steps_per_epoch={lr_scheduler.steps_per_epoch}), but epoch "
                f"{self._epoch} took {steps} optimizer steps: pass steps_per_epoch={steps}"
            )

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        if self._epoch < 0:  # trainer.evaluate() outside of train()
            return
        metrics = metrics or {}
        if self.metric not in metrics:
            raise KeyError(
                f"LrsearchCallback: metric {self.metric!r} not in the evaluation; "
                f"got {sorted(metrics)} (pass compute_metrics to the Trainer)"
            )
        value = float(metrics[self.metric])
        extra = {k: float(v) for k, v in metrics.items() if k != self.metric and _is_number(v)}
        if self.trial.report(value, self._epoch, metrics=extra):
            control.should_training_stop = True
        elif isinstance(lr_scheduler, TrialLRScheduler) and math.isfinite(value):
            lr_scheduler.epoch_value(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
