"""One claimed trial on the client side: its configuration, the PyTorch helpers, reports.

The PyTorch helpers build the weight init, optimizer and schedule with the
built-in workers' own code (:mod:`lrsearch.workers`), imported when called, so
that importing the client never loads torch.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from lrsearch.client._errors import ApiError, ClientError
from lrsearch.client._http import Http, segment

if TYPE_CHECKING:
    import torch

    from lrsearch.search_space import TrialConfig
    from lrsearch.workers._schedules import LRSchedule

log = logging.getLogger(__name__)


class TrialSchedule:
    """The trial's learning-rate schedule on an optimizer: warm-up prefix, then its own.

    Call :meth:`step_batch` after every ``optimizer.step()`` and
    :meth:`step_epoch` with the epoch's objective after each epoch;
    :meth:`Trial.epochs` starts each epoch.
    """

    def __init__(self, schedule: LRSchedule) -> None:
        self._schedule = schedule

    @property
    def lr(self) -> float:
        """The learning rate the optimizer uses now."""
        return self._schedule.lr

    def start_epoch(self, epoch: int) -> None:
        """Switch from the warm-up prefix to the main schedule when due (done by ``epochs()``)."""
        self._schedule.start_epoch(epoch)

    def step_batch(self) -> None:
        """After each optimizer step: advances a per-batch schedule (cyclic)."""
        self._schedule.after_batch()

    def step_epoch(self, value: float) -> None:
        """After each epoch: advances per-epoch schedules; plateau reads ``value``."""
        self._schedule.end_epoch(value)


class Trial:
    """A trial this client claimed: run it, report every epoch, and it ends by itself.

    Attributes:
        number: The trial's number in the study.
        params: Optuna's parameters (``schedule``, ``learning_rate``, ``cyclic.max_lr``...).
        config: The resolved configuration, every value absolute (a cyclic
            ``max_lr`` is a learning rate).
        learning_rate, batch_size, dropout, schedule_type, weight_init,
        warmup_epochs, optimizer_name, max_epochs: The values to train with.
        objective, direction: What to report and which way is better.
        confirmation_of: On a confirmation trial, the number of the trial whose
            configuration it re-trains; ``None`` on a search trial. Train it with
            a seed of your own: confirming means another seed, same settings.
    """

    def __init__(self, http: Http, study: str, client_id: str, claimed: dict[str, Any]) -> None:
        self._http = http
        self._path = f"/studies/{segment(study)}/trials/{claimed['number']}"
        self.client_id = client_id
        self.number: int = int(claimed["number"])
        self.params: dict[str, Any] = dict(claimed["params"])
        self.config: dict[str, Any] = dict(claimed["config"])
        self._trial_config: dict[str, Any] = dict(claimed["trial_config"])
        self.max_epochs: int = int(claimed["max_epochs"])
        self.heartbeat_s: float = float(claimed["heartbeat_s"])
        self.objective: str = str(claimed["objective"])
        self.direction: str = str(claimed["direction"])
        confirms = claimed.get("confirmation_of")
        self.confirmation_of: int | None = None if confirms is None else int(confirms)
        self.learning_rate: float = float(self.config["learning_rate"])
        self.batch_size: int = int(self.config["batch_size"])
        self.dropout: float = float(self.config["dropout"])
        self.weight_init: str = str(self.config["weight_init"])
        self.warmup_epochs: int = int(self.config["warmup_epochs"])
        self.optimizer_name: str = str(self.config["optimizer"])
        self.schedule_type: str = str(self.config["schedule"]["type"])
        self.state: str = "RUNNING"
        self.pruned = False
        self.lost = threading.Event()
        self._schedule: TrialSchedule | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._epoch = -1
        self._epoch_lr: float | None = None
        self._last_value: float | None = None
        self._stop_beat = threading.Event()
        self._beat: threading.Thread | None = None

    def __repr__(self) -> str:
        lr = f"{self.learning_rate:.3g}"
        return f"Trial(number={self.number}, schedule={self.schedule_type!r}, lr={lr})"

    # -- the configuration, in PyTorch ----------------------------------------

    def trial_config(self) -> TrialConfig:
        """The configuration as the search space's :class:`TrialConfig`."""
        from lrsearch.search_space import TrialConfig

        return TrialConfig.model_validate(self._trial_config)

    def init_weights(self, model: torch.nn.Module) -> torch.nn.Module:
        """Apply the sampled weight init to every ``Linear`` and ``Conv2d`` of ``model``."""
        from lrsearch.workers.models import init_weights

        return init_weights(model, self.weight_init)

    def optimizer(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The sampled optimizer (SGD with momentum 0.9 unless the study samples others)."""
        from lrsearch.workers._schedules import build_optimizer

        self._optimizer = build_optimizer(params, self.trial_config())
        return self._optimizer

    def schedule(self, optimizer: torch.optim.Optimizer, *, steps_per_epoch: int) -> TrialSchedule:
        """The sampled schedule on ``optimizer``, built as a built-in worker builds it.

        Args:
            optimizer: Usually :meth:`optimizer`'s.
            steps_per_epoch: Optimizer steps per epoch (``len(loader)``); a cyclic
                schedule's half cycle is counted in epochs.
        """
        from lrsearch.workers._schedules import LRSchedule

        direction: Literal["maximize", "minimize"] = (
            "maximize" if self.direction == "maximize" else "minimize"
        )
        inner = LRSchedule(
            optimizer,
            self.trial_config(),
            direction=direction,
            batches_per_epoch=max(1, steps_per_epoch),
        )
        self._optimizer = optimizer
        self._schedule = TrialSchedule(inner)
        return self._schedule

    # -- running it ---------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """Pruned, ended, or lost to another client: no more epochs."""
        return self.pruned or self.lost.is_set() or self.state != "RUNNING"

    def epochs(self) -> Iterator[int]:
        """The epochs to train, ``0 .. max_epochs - 1``; ends early when pruned or lost."""
        for epoch in range(self.max_epochs):
            if self.stopped:
                return
            self.start_epoch(epoch)
            yield epoch

    def start_epoch(self, epoch: int) -> None:
        """Begin ``epoch``: switch the schedule if due, note the LR. :meth:`epochs` calls it.

        Call it yourself only where a framework runs the epochs (see
        :mod:`lrsearch.integrations.lightning`).
        """
        self._epoch = epoch
        if self._schedule is not None:
            self._schedule.start_epoch(epoch)
        # The LR of the epoch's first batch, as a built-in worker records it.
        self._epoch_lr = float(self._optimizer.param_groups[0]["lr"]) if self._optimizer else None

    def report(
        self, value: float, epoch: int | None = None, *, metrics: dict[str, float] | None = None
    ) -> bool:
        """Report the objective after ``epoch`` (default: the current one).

        A NaN or infinite value fails the trial as diverged, as a built-in worker does.

        Returns:
            Whether to stop: pruned (the trial is then PRUNED), lost, or diverged.
        """
        if self.stopped:
            return True
        epoch = self._epoch if epoch is None else epoch
        if epoch < 0:
            raise ValueError("report(value, epoch): no epoch has started; pass epoch")
        value = float(value)
        if not math.isfinite(value):
            self.fail("diverged: the reported value is NaN or infinite")
            return True
        body: dict[str, Any] = {"client_id": self.client_id, "epoch": epoch, "value": value}
        if self._epoch_lr is not None and epoch == self._epoch:
            body["lr"] = self._epoch_lr
        if metrics:
            body["metrics"] = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
        answer = self._call("reports", body)
        if answer is None:
            return True
        self._last_value = value
        if answer["prune"]:
            self.pruned, self.state = True, "PRUNED"
        return bool(answer["prune"])

    def complete(self, value: float | None = None) -> None:
        """Finish COMPLETE with ``value`` (default: the last reported). Done for you at the end."""
        if self.state != "RUNNING" or self.lost.is_set():
            return
        body: dict[str, Any] = {"client_id": self.client_id}
        if value is not None:
            body["value"] = float(value)
        if self._call("complete", body) is not None:
            self.state = "COMPLETE"

    def fail(self, error: str) -> None:
        """Finish FAIL with ``error`` as the reason; it is not retried."""
        if self.state != "RUNNING" or self.lost.is_set():
            return
        if self._call("fail", {"client_id": self.client_id, "error": error[:2000]}) is not None:
            self.state = "FAIL"

    def release(self) -> None:
        """Hand the trial back unfinished; the service retries it (as on Ctrl-C)."""
        if self.state != "RUNNING" or self.lost.is_set():
            return
        self._call("release", {"client_id": self.client_id})
        self.state = "RELEASED"

    def _call(self, action: str, body: dict[str, Any]) -> Any:
        """POST an action; ``None`` when the lease is lost (the trial is then abandoned)."""
        try:
            answer = self._http.json("POST", f"{self._path}/{action}", json=body)
        except ApiError as exc:
            if not exc.lease_lost:
                raise
            self._lose(str(exc))
            return None
        return {} if answer is None else answer

    def _lose(self, why: str) -> None:
        if not self.lost.is_set():
            log.warning("trial %d is no longer ours, abandoning it: %s", self.number, why)
        self.lost.set()

    # -- heartbeats ---------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._beat = threading.Thread(
            target=self._heartbeat_loop, name=f"lrsearch-heartbeat-{self.number}", daemon=True
        )
        self._beat.start()

    def _stop_heartbeat(self) -> None:
        self._stop_beat.set()
        if self._beat is not None:
            self._beat.join(timeout=5.0)

    def _heartbeat_loop(self) -> None:
        while not self._stop_beat.wait(self.heartbeat_s):
            if self.stopped:
                return
            try:
                self._http.request(
                    "POST", f"{self._path}/heartbeat", json={"client_id": self.client_id}
                )
            except ApiError as exc:
                if exc.lease_lost:
                    self._lose(str(exc))
                    return
                log.warning("heartbeat of trial %d failed: %s", self.number, exc)
            except ClientError as exc:
                log.warning("heartbeat of trial %d failed: %s", self.number, exc)
