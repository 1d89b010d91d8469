"""PyTorch Lightning: run a claimed trial inside a ``Trainer``.

Needs ``lightning`` (``pip install 'lrsearch[lightning]'``)::

    from lrsearch.integrations import lightning as lrs

    class MyModule(L.LightningModule):
        def configure_optimizers(self):
            return lrs.configure_optimizers(self.trial, self)   # the trial's optimizer + schedule

    for trial in study.trials():
        module = MyModule(trial)
        trainer = L.Trainer(max_epochs=trial.max_epochs, callbacks=[lrs.LrsearchCallback(trial)])
        trainer.fit(module, train_loader, val_loader)

:func:`configure_optimizers` returns the ``lr_scheduler`` configuration the
trial's schedule needs: stepped per optimizer step for a cyclic schedule, per
epoch otherwise, and with the objective as ``monitor`` for plateau.
:class:`LrsearchCallback` reports the monitored metric after each validation
and stops the fit when the trial is pruned or lost.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl

from lrsearch.client import Trial
from lrsearch.integrations._scheduler import Interval, TrialLRScheduler

__all__ = ["LrsearchCallback", "TrialLRScheduler", "configure_optimizers"]


def configure_optimizers(
    trial: Trial,
    module: pl.LightningModule,
    *,
    monitor: str | None = None,
    steps_per_epoch: int | None = None,
) -> dict[str, Any]:
    """The trial's optimizer and schedule, as ``LightningModule.configure_optimizers`` returns them.

    Args:
        trial: The claimed trial.
        module: The module being fitted (its parameters are optimized).
        monitor: The logged metric that is the objective; default ``trial.objective``.
        steps_per_epoch: Optimizer steps per epoch; default from the trainer
            (``estimated_stepping_batches / max_epochs``).

    Returns:
        ``{"optimizer": ..., "lr_scheduler": {"scheduler", "interval", ...}}``.
    """
    optimizer = trial.optimizer(module.parameters())
    if steps_per_epoch is None:
        trainer = module.trainer
        if not trainer.max_epochs or trainer.max_epochs < 1:
            raise ValueError("configure_optimizers: set Trainer(max_epochs=trial.max_epochs)")
        steps_per_epoch = math.ceil(trainer.estimated_stepping_batches / trainer.max_epochs)
    # Only cyclic changes the LR within an epoch; every other schedule steps per epoch.
    interval: Interval = "step" if trial.schedule_type == "cyclic" else "epoch"
    scheduler = TrialLRScheduler(
        trial, optimizer, steps_per_epoch=steps_per_epoch, interval=interval
    )
    config: dict[str, Any] = {"scheduler": scheduler, "interval": interval, "frequency": 1}
    if scheduler.needs_value:
        # Lightning then calls scheduler.step(logged[monitor]) after validation.
        config |= {"monitor": monitor or trial.objective, "reduce_on_plateau": True}
    return {"optimizer": optimizer, "lr_scheduler": config}


class LrsearchCallback(pl.Callback):  # type: ignore[misc,unused-ignore]
    """Report ``monitor`` to the trial after each validation; stop the fit when told to.

    With :func:`configure_optimizers`, Lightning steps the schedule. A module
    that returns only ``trial.optimizer(...)`` after ``trial.schedule(...)`` gets
    its schedule stepped by this callback instead.

    Args:
        trial: The claimed trial (from ``study.trials()``).
        monitor: The logged metric that is the study's objective; default ``trial.objective``.
    """

    def __init__(self, trial: Trial, monitor: str | None = None) -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor or trial.objective
        self._steps_schedule = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        attached = any(
            isinstance(config.scheduler, TrialLRScheduler)
            for config in trainer.lr_scheduler_configs
        )
        self._steps_schedule = not attached and self.trial._schedule is not None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.trial.start_epoch(trainer.current_epoch)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._steps_schedule and self.trial._schedule is not None:
            self.trial._schedule.step_batch()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metric = trainer.callback_metrics.get(self.monitor)
        if metric is None:
            raise KeyError(
                f"LrsearchCallback: metric {self.monitor!r} was not logged; "
                f"logged: {sorted(trainer.callback_metrics)}"
            )
        value = float(metric)
        if self.trial.report(value, trainer.current_epoch):
            trainer.should_stop = True
        elif self._steps_schedule and self.trial._schedule is not None and math.isfinite(value):
            self.trial._schedule.step_epoch(value)
