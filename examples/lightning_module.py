"""Bring your own Lightning module: lrsearch chooses each trial, Lightning trains it.

``configure_optimizers`` returns the trial's optimizer and schedule in one
line; the callback reports ``val_accuracy`` after each validation and stops
the fit when the trial is pruned. Generated data, no downloads.

    pip install 'lrsearch[lightning]'
    export LRSEARCH_API_URL=http://127.0.0.1:8000 LRSEARCH_API_KEY=lrs_...   # a submit key
    python examples/lightning_module.py my-study --create   # once: submit a task: external study
    python examples/lightning_module.py my-study            # on every machine
"""

from __future__ import annotations

import argparse
from typing import Any

import lightning as L  # noqa: N812 - Lightning's own convention
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrsearch import Client
from lrsearch.client import ApiError, Trial
from lrsearch.integrations import lightning as lrs

DEFINITION = {
    "task": "external",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "budget": {"n_trials": 6, "max_epochs": 3},
    "sampler": {"type": "random", "seed": 0},
    "pruner": {"type": "successive_halving", "min_epochs": 1, "reduction_factor": 2},
    "search_space": {
        "schedules": ["step", "cosine", "cyclic", "plateau"],
        "learning_rate": {"low": 1.0e-4, "high": 0.3, "log": True},
        "batch_size": [32, 64],
        "dropout": {"low": 0.0, "high": 0.3},
        "warmup_epochs": 0,
    },
}


def make_data(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Three classes from a random linear teacher, 20 features; 600 train, 200 validation."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(800, 20, generator=gen)
    y = (x @ torch.randn(20, 3, generator=gen)).argmax(dim=1)
    return TensorDataset(x[:600], y[:600]), TensorDataset(x[600:], y[600:])


class Classifier(L.LightningModule):
    def __init__(self, trial: Trial) -> None:
        super().__init__()
        self.trial = trial
        self.net = nn.Sequential(
            nn.Linear(20, 32), nn.ReLU(), nn.Dropout(trial.dropout), nn.Linear(32, 3)
        )
        trial.init_weights(self.net)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_accuracy", (self.net(x).argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> Any:
        return lrs.configure_optimizers(self.trial, self)  # the trial's optimizer + schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--create", action="store_true", help="submit the study first")
    args = parser.parse_args()
    client = Client()  # LRSEARCH_API_URL, LRSEARCH_API_KEY
    if args.create:
        try:
            client.create_study({"name": args.study, **DEFINITION})
        except ApiError as exc:
            if exc.status != 409:  # 409: it exists already, just run it
                raise
    train, val = make_data()
    study = client.study(args.study)
    for trial in study.trials():
        L.seed_everything(trial.number, verbose=False)
        trainer = L.Trainer(
            max_epochs=trial.max_epochs,
            callbacks=[lrs.LrsearchCallback(trial)],
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(
            Classifier(trial),
            DataLoader(train, batch_size=trial.batch_size, shuffle=True),
            DataLoader(val, batch_size=200),
        )
        lr = f"{trial.learning_rate:.3g}"
        print(f"trial {trial.number} {trial.state} {trial.schedule_type} lr={lr}")
    print("best:", study.best())


if __name__ == "__main__":
    main()
