"""Bring your own training code: a plain PyTorch loop whose trials lrsearch chooses.

lrsearch samples each trial's schedule, learning rate, batch size, dropout and
weight init; this script trains its own model with them and reports the
validation accuracy every epoch. Run it on as many machines as you like: each
copy claims trials until the study's budget is spent.

    export LRSEARCH_API_URL=http://127.0.0.1:8000 LRSEARCH_API_KEY=lrs_...   # a submit key
    python examples/plain_pytorch.py my-study --create   # once: submit a task: external study
    python examples/plain_pytorch.py my-study            # on every machine
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrsearch import Client
from lrsearch.client import ApiError


def make_data(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Three classes from a random linear teacher, 20 features; 600 train, 200 validation."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(800, 20, generator=gen)
    teacher = torch.randn(20, 3, generator=gen)
    y = (x @ teacher + 0.5 * torch.randn(800, 3, generator=gen)).argmax(dim=1)
    return TensorDataset(x[:600], y[:600]), TensorDataset(x[600:], y[600:])


class MyNet(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(20, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def evaluate(model: nn.Module, data: TensorDataset) -> float:
    model.eval()
    x, y = data.tensors
    with torch.inference_mode():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    model.train()
    return float(accuracy)


DEFINITION = {
    "task": "external",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "budget": {"n_trials": 8, "max_epochs": 4},
    "sampler": {"type": "random", "seed": 0},
    "pruner": {"type": "median", "min_epochs": 1},
    "search_space": {
        "schedules": ["step", "cosine", "cyclic", "plateau"],
        "learning_rate": {"low": 1.0e-3, "high": 0.3, "log": True},
        "batch_size": [32, 64],
        "dropout": {"low": 0.0, "high": 0.3},
        "warmup_epochs": 0,
    },
}


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
        torch.manual_seed(trial.number)
        loader = DataLoader(train, batch_size=trial.batch_size, shuffle=True)
        model = MyNet(dropout=trial.dropout)
        trial.init_weights(model)
        optimizer = trial.optimizer(model.parameters())
        schedule = trial.schedule(optimizer, steps_per_epoch=len(loader))
        loss_fn = nn.CrossEntropyLoss()
        for epoch in trial.epochs():
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
                schedule.step_batch()
            value = evaluate(model, val)
            trial.report(value, epoch)
            schedule.step_epoch(value)
        print(
            f"trial {trial.number} {trial.state} {trial.schedule_type} lr={trial.learning_rate:.3g}"
        )
    print("best:", study.best())


if __name__ == "__main__":
    main()
