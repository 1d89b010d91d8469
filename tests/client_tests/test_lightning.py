"""The Lightning integration on a real Trainer against a real ``lrsearch serve``.

Skipped when ``lightning`` is not installed (it is an optional extra).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrsearch.client import Client, Trial
from tests.client_tests.served import Served
from tests.client_tests.worker_lrs import worker_lrs

L = pytest.importorskip("lightning")
from lrsearch.integrations.lightning import (  # noqa: E402
    LrsearchCallback,
    TrialLRScheduler,
    configure_optimizers,
)

pytestmark = [
    # Lightning's advice for real jobs (more loader workers, a logger) is noise here.
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    # Lightning 2.6 on torch 2.13: its own use of a deprecated torch API.
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),
]


def _data() -> DataLoader[Any]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = (x.sum(dim=1) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


class _Module(L.LightningModule):  # type: ignore[misc,name-defined]
    def __init__(self, trial: Trial, steps: int) -> None:
        super().__init__()
        self.trial, self.steps = trial, steps
        self.net = nn.Linear(4, 2)
        self.lrs: list[float] = []

    def training_step(self, batch: Any, _idx: int) -> torch.Tensor:
        self.lrs.append(self.optimizers().param_groups[0]["lr"])
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch: Any, _idx: int) -> None:
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = self.trial.optimizer(self.parameters())
        self.trial.schedule(optimizer, steps_per_epoch=self.steps)
        return optimizer


def test_callback_reports_steps_the_schedule_and_completes(served: Served) -> None:
    name = f"pl-{uuid.uuid4().hex[:10]}"
    with Client(served.url, served.key) as client:
        client.create_study(
            {
                "name": name,
                "task": "external",
                "objective": {"metric": "val_acc", "direction": "maximize"},
                "budget": {"n_trials": 1, "max_epochs": 3},
                "pruner": {"type": "none"},
                "search_space": {"schedules": ["exponential"], "warmup_epochs": 0},
            }
        )
        loader = _data()
        for trial in client.study(name).trials():
            module = _Module(trial, len(loader))
            trainer = L.Trainer(
                max_epochs=trial.max_epochs,
                callbacks=[LrsearchCallback(trial, monitor="val_acc")],
                accelerator="cpu",
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            trainer.fit(module, loader, loader)
        detail = client._http.json("GET", f"/studies/{name}/trials/0")
    assert detail["state"] == "COMPLETE"
    assert sorted(detail["intermediate_values"]) == ["0", "1", "2"]
    gamma = trial.config["schedule"]["gamma"]
    lr = trial.learning_rate
    # The exponential schedule ran, stepped once per epoch by the callback.
    assert detail["lr_curve"] == pytest.approx([lr, lr * gamma, lr * gamma**2])
    assert module.lrs[0] == pytest.approx(lr)
    assert module.lrs[-1] == pytest.approx(lr * gamma**2)


STEPS = 4  # batches of 16 in _data()
# Short periods, so that every epoch of the four changes the learning rate.
SHORT = {
    "step": {"step_size": {"low": 1, "high": 2}},
    "cyclic": {"step_size": {"low": 1, "high": 2}},
    "plateau": {"patience": {"low": 0, "high": 1}},
}


class _OneLine(_Module):
    """configure_optimizers is the integration's one line; val_acc can be fixed by the test."""

    def __init__(self, trial: Trial, fixed: float | None = None) -> None:
        super().__init__(trial, STEPS)
        self.fixed = fixed

    def validation_step(self, batch: Any, _idx: int) -> None:
        if self.fixed is None:
            super().validation_step(batch, _idx)
        else:
            self.log("val_acc", self.fixed)

    def configure_optimizers(self) -> Any:
        return configure_optimizers(self.trial, self)


def _study(client: Client, schedule: str, *, n_trials: int = 1, **extra: Any) -> str:
    name = f"pl-{uuid.uuid4().hex[:10]}"
    client.create_study(
        {
            "name": name,
            "task": "external",
            "objective": {"metric": "val_acc", "direction": "maximize"},
            "budget": {"n_trials": n_trials, "max_epochs": 4},
            "sampler": {"type": "random", "seed": 5},
            "pruner": {"type": "none"},
            "search_space": {
                "schedules": [schedule],
                "warmup_epochs": 1,
                "learning_rate": {"low": 0.01, "high": 0.1, "log": True},
                "schedule_params": {schedule: SHORT[schedule]} if schedule in SHORT else {},
            },
            **extra,
        }
    )
    return name


def _fit(module: _OneLine, trial: Trial) -> L.Trainer:  # type: ignore[name-defined]
    trainer = L.Trainer(
        max_epochs=trial.max_epochs,
        callbacks=[LrsearchCallback(trial)],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    loader = _data()
    trainer.fit(module, loader, loader)
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize(
    ("schedule", "interval"),
    [("step", "epoch"), ("cosine", "epoch"), ("cyclic", "step"), ("plateau", "epoch")],
)
def test_configure_optimizers_runs_the_learning_rates_of_a_builtin_worker(
    served: Served, schedule: str, interval: str
) -> None:
    with Client(served.url, served.key) as client:
        name = _study(client, schedule)
        for trial in client.study(name).trials():
            module = _OneLine(trial)
            trainer = _fit(module, trial)
        detail = client._http.json("GET", f"/studies/{name}/trials/0")
    (config,) = trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, TrialLRScheduler)
    assert config.interval == interval
    assert config.monitor == ("val_acc" if schedule == "plateau" else None)
    assert detail["state"] == "COMPLETE"
    values = [detail["intermediate_values"][str(e)] for e in range(trial.max_epochs)]
    expected = worker_lrs(trial, values, STEPS)
    assert module.lrs == pytest.approx(expected, rel=1e-9)
    assert detail["lr_curve"] == pytest.approx(expected[::STEPS], rel=1e-9)


def test_a_pruned_trial_stops_the_fit(served: Served) -> None:
    # Successive halving with two trials: the worse one is pruned at the first
    # rung (after epoch 1); val_acc is fixed per trial so the test knows which.
    with Client(served.url, served.key) as client:
        name = _study(
            client,
            "step",
            n_trials=2,
            pruner={"type": "successive_halving", "reduction_factor": 2},
        )
        batches: dict[int, int] = {}
        for trial in client.study(name).trials():
            module = _OneLine(trial, fixed=0.9 if trial.number == 0 else 0.1)
            _fit(module, trial)
            batches[trial.number] = len(module.lrs)
        rows = client.study(name).trial_rows()
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED"]
    assert batches == {0: STEPS * 4, 1: STEPS * 2}
