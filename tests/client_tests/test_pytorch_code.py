"""``best --as pytorch`` code runs the same learning rates as a built-in worker's schedule."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lrsearch.search_space import TrialConfig, pytorch_code
from lrsearch.workers._schedules import LRSchedule, build_optimizer

EPOCHS = 8
STEPS = 3
SCHEDULES: list[dict[str, Any]] = [
    {"type": "step", "step_size": 2, "gamma": 0.5},
    {"type": "exponential", "gamma": 0.8},
    {"type": "cosine", "eta_min": 0.1},
    {"type": "warmup", "start_factor": 0.2, "ramp_epochs": 3},
    {"type": "plateau", "factor": 0.5, "patience": 0},
    {"type": "cyclic", "max_lr": 4.0, "step_size": 1, "mode": "triangular2"},
]
# Objectives that stall, so the plateau schedule decays.
VALUES = [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7]


def _config(schedule: dict[str, Any], warmup: int) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "schedule": schedule,
            "learning_rate": 0.05,
            "batch_size": 32,
            "dropout": 0.1,
            "warmup_epochs": warmup,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "max_epochs": EPOCHS,
        }
    )


def _worker_lrs(config: TrialConfig) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model.parameters(), config)
    schedule = LRSchedule(optimizer, config, direction="maximize", batches_per_epoch=STEPS)
    lrs = []
    for epoch in range(EPOCHS):
        schedule.start_epoch(epoch)
        for _ in range(STEPS):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_batch()
        schedule.end_epoch(VALUES[epoch])
    return lrs


def _code_lrs(code: str, kind: str) -> tuple[list[float], torch.optim.Optimizer]:
    namespace: dict[str, Any] = {"model": torch.nn.Linear(2, 2), "steps_per_epoch": STEPS}
    exec(code, namespace)
    optimizer, scheduler = namespace["optimizer"], namespace["scheduler"]
    lrs = []
    for epoch in range(EPOCHS):
        for _ in range(STEPS):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if kind == "cyclic":
                scheduler.step()
        if kind == "plateau":
            scheduler.step(VALUES[epoch])
        elif kind != "cyclic":
            scheduler.step()
    return lrs, optimizer


@pytest.mark.parametrize("warmup", [0, 2])
@pytest.mark.parametrize("schedule", SCHEDULES, ids=[s["type"] for s in SCHEDULES])
def test_code_reproduces_the_workers_learning_rates(schedule: dict[str, Any], warmup: int) -> None:
    config = _config(schedule, warmup)
    code = pytorch_code(config, direction="maximize", header="test")
    kind = schedule["type"]
    if warmup and kind in ("plateau", "cyclic"):
        # Not expressible with SequentialLR: the code says what to do instead.
        assert f"# At the start of epoch {warmup}: scheduler = " in code
        return
    lrs, optimizer = _code_lrs(code, kind)
    assert lrs == pytest.approx(_worker_lrs(config), rel=1e-9)
    assert type(optimizer).__name__ == "AdamW"
    assert optimizer.param_groups[0]["weight_decay"] == 0.01


def test_values_are_absolute() -> None:
    code = pytorch_code(_config(SCHEDULES[-1], 0), direction="maximize")
    assert "max_lr=0.2," in code  # 4.0 x 0.05: a learning rate, not the multiplier
    code = pytorch_code(_config(SCHEDULES[2], 0), direction="maximize")
    assert "eta_min=0.005" in code
