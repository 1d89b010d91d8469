"""A trial's schedule behind the ``scheduler.step()`` that a training framework calls.

Frameworks step one scheduler object, either after every optimizer step
(Transformers' ``Trainer``, Lightning's ``interval: "step"``) or once per
epoch (Lightning's ``interval: "epoch"``). A built-in worker instead steps
:class:`lrsearch.workers._schedules.LRSchedule` per batch *and* per epoch (the
warm-up prefix and most schedules per epoch, cyclic per batch, plateau with
the epoch's objective). :class:`TrialLRScheduler` turns one into the other, so
the optimizer sees the same learning rates as under a built-in worker.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch.optim import lr_scheduler

from lrsearch.client import Trial

Interval = Literal["step", "epoch"]


class TrialLRScheduler(lr_scheduler.LRScheduler):
    """The trial's schedule as one scheduler, stepped per optimizer step or per epoch.

    With ``interval="step"``, :meth:`step` after each optimizer step does the
    schedule's per-batch step and, after the epoch's last step, its per-epoch
    step. A plateau schedule needs the epoch's objective, which is known only
    after evaluation: its epoch step then waits for :meth:`epoch_value` (the
    integrations' callbacks call it after each report). With
    ``interval="epoch"``, :meth:`step` (``step(value)`` for plateau) ends an epoch.

    It subclasses ``LRScheduler`` because Lightning and Transformers check for
    one, but does none of its arithmetic: every learning rate comes from the
    ``torch.optim.lr_scheduler`` objects that a built-in worker builds.

    Args:
        trial: The claimed trial.
        optimizer: The trial's optimizer (``trial.optimizer(...)``).
        steps_per_epoch: Optimizer steps per epoch.
        interval: When the framework calls :meth:`step`.
    """

    def __init__(
        self,
        trial: Trial,
        optimizer: torch.optim.Optimizer,
        *,
        steps_per_epoch: int,
        interval: Interval = "step",
    ) -> None:
        # LRScheduler.__init__ is skipped on purpose: it would take a first step
        # and set ``initial_lr``; the inner torch schedulers do that themselves.
        self.optimizer = optimizer
        self.trial = trial
        self.interval = interval
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.needs_value = trial.schedule_type == "plateau"
        self._schedule = trial.schedule(optimizer, steps_per_epoch=self.steps_per_epoch)
        self._schedule.start_epoch(0)
        self._steps = 0  # optimizer steps taken in the current epoch
        self._awaiting_value = False
        self.last_epoch = 0  # epochs ended, as LRScheduler counts them
        self._last_lr = self.get_lr()

    def get_lr(self) -> list[float | torch.Tensor]:
        """The learning rate of every parameter group, now."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def step(self, metrics: Any = None) -> None:
        """After an optimizer step (``interval="step"``) or an epoch (``"epoch"``).

        Args:
            metrics: The epoch's objective, for a plateau schedule stepped per
                epoch (Lightning passes its ``monitor`` here).
        """
        if self.interval == "epoch":
            self._end_epoch(metrics)
        else:
            self._schedule.step_batch()
            self._steps += 1
            if self._steps >= self.steps_per_epoch:
                if self.needs_value and metrics is None:
                    self._awaiting_value = True
                else:
                    self._end_epoch(metrics)
        self._last_lr = self.get_lr()

    def epoch_value(self, value: float) -> None:
        """The epoch's objective, after evaluation: ends an epoch that waits for it."""
        if self._awaiting_value:
            self._end_epoch(value)
            self._last_lr = self.get_lr()

    @property
    def awaiting_value(self) -> bool:
        """The epoch's steps are done and a plateau schedule waits for its objective."""
        return self._awaiting_value

    @property
    def mid_epoch(self) -> bool:
        """Some but not all of an epoch's steps are done."""
        return 0 < self._steps < self.steps_per_epoch

    def _end_epoch(self, value: Any) -> None:
        objective = math.nan if value is None else float(value)
        self._schedule.step_epoch(objective)
        self.last_epoch += 1
        self._steps = 0
        self._awaiting_value = False
        # Build the main schedule now if due, so that the next epoch's first batch
        # already trains at its learning rate, callback or not.
        self._schedule.start_epoch(self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        """Counters only: the trial (and its HTTP client) is not checkpointed."""
        return {"last_epoch": self.last_epoch, "steps": self._steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._steps = int(state_dict["steps"])
