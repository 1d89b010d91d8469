"""The training loop: reproducibility, divergence, pruning, interruption, memory."""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from lrsearch.workers import TrainingInterrupted, WorkerError
from lrsearch.workers.tasks import SyntheticTask
from lrsearch.workers.training import TrainResult, train_trial
from tests.workers_tests.conftest import ConfigFactory

METRIC_KEYS = {"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds"}


def _without_timings(result: TrainResult) -> list[dict[str, float]]:
    return [{k: v for k, v in m.items() if k != "seconds"} for m in result.metrics]


def test_a_complete_trial_reports_every_epoch(
    synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    result = train_trial(make_config(max_epochs=5), synthetic)
    assert result.status == "complete"
    assert result.epochs_run == 5
    assert [m["epoch"] for m in result.metrics] == [0, 1, 2, 3, 4]
    assert all(set(m) == METRIC_KEYS for m in result.metrics)
    assert result.value == result.metrics[-1]["val_accuracy"]
    assert result.value > 0.8  # a good learning rate learns the blobs


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "cosine", "eta_min": 0.0},
        {"type": "cyclic", "max_lr": 3.0, "step_size": 1, "mode": "triangular"},
    ],
)
def test_same_seed_gives_identical_curves_and_metrics(
    synthetic: SyntheticTask, make_config: ConfigFactory, schedule: dict[str, Any]
) -> None:
    config = make_config(schedule=schedule, dropout=0.3, weight_init="xavier_uniform")
    first = train_trial(config, synthetic, seed=3)
    second = train_trial(config, synthetic, seed=3)
    other = train_trial(config, synthetic, seed=4)
    assert first.lr_curve == second.lr_curve
    assert _without_timings(first) == _without_timings(second)
    assert _without_timings(first) != _without_timings(other)


def test_training_leaves_the_global_rng_as_it_found_it(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    train_trial(make_config(max_epochs=2), small_synthetic)
    assert torch.equal(torch.get_rng_state(), state)


def test_objective_val_loss_is_reported_and_returned(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    result = train_trial(
        make_config(max_epochs=3), small_synthetic, objective="val_loss", direction="minimize"
    )
    assert result.value == result.metrics[-1]["val_loss"]


def test_unknown_objective_is_rejected(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    with pytest.raises(ValueError, match="unknown objective"):
        train_trial(make_config(), small_synthetic, objective="f1")


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_optimizer_trains(
    small_synthetic: SyntheticTask, make_config: ConfigFactory, optimizer: str
) -> None:
    result = train_trial(
        make_config(optimizer=optimizer, learning_rate=0.01, weight_decay=1e-4, max_epochs=2),
        small_synthetic,
    )
    assert result.status == "complete"
    assert result.metrics[-1]["train_loss"] < result.metrics[0]["train_loss"] * 1.5


def test_bf16_is_ignored_on_cpu(small_synthetic: SyntheticTask, make_config: ConfigFactory) -> None:
    config = make_config(max_epochs=2)
    plain = train_trial(config, small_synthetic)
    asked = train_trial(config, small_synthetic, bf16=True)
    assert _without_timings(plain) == _without_timings(asked)


def test_huge_learning_rate_diverges_without_raising(
    synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    result = train_trial(make_config(learning_rate=1e6, optimizer="sgd"), synthetic)
    assert result.status == "diverged"
    assert result.value is None
    assert result.epochs_run < 10
    assert len(result.lr_curve) == result.epochs_run
    # Only finite numbers are kept: the metrics go to JSON as they are.
    assert all(math.isfinite(v) for m in result.metrics for v in m.values())


@pytest.mark.parametrize("pruner_name", ["median", "hyperband"])
def test_pruner_stops_bad_trials_early(
    synthetic: SyntheticTask, make_config: ConfigFactory, pruner_name: str
) -> None:
    max_epochs = 9
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if pruner_name == "median"
        else optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=3
        )
    )
    # Hyperband assigns trials to brackets by a hash of study name and trial
    # number: a fixed name keeps the assignment, and so this test, deterministic.
    study = optuna.create_study(
        study_name=f"prune-{pruner_name}", direction="maximize", pruner=pruner
    )

    def run(learning_rate: float) -> TrainResult:
        trial = study.ask()
        result = train_trial(
            make_config(learning_rate=learning_rate, max_epochs=max_epochs), synthetic, trial=trial
        )
        if result.status == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, result.value)
        return result

    good = [run(lr) for lr in (0.05, 0.03, 0.08, 0.05, 0.04, 0.06)]
    bad = [run(1e-5) for _ in range(4)]
    # Both pruners may also stop a good trial that falls just below its peers;
    # the median pruner's start-up trials always run to the end.
    assert any(r.status == "complete" for r in good)
    if pruner_name == "median":
        assert all(r.status == "complete" for r in good[:3])
    assert all(r.status == "pruned" for r in bad)
    assert all(r.epochs_run < max_epochs for r in bad)
    for result in bad:
        pruned_at = result.epochs_run - 1
        assert result.value == result.metrics[pruned_at]["val_accuracy"]


def test_stop_request_interrupts_at_an_epoch_boundary(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 2

    with pytest.raises(TrainingInterrupted) as info:
        train_trial(make_config(max_epochs=10), small_synthetic, stop_requested=stop)
    assert info.value.epochs_run == 2
    assert isinstance(info.value, WorkerError)


class _Explode(nn.Module):
    """A layer that raises on its 10th call, as a layer running out of memory would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 10:
            raise RuntimeError("simulated failure mid-epoch")
        return x


class _FailingTask(SyntheticTask):
    """Synthetic data; the model fails in the middle of the first epoch."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.models: list[weakref.ref[nn.Module]] = []

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        model = nn.Sequential(super().build_model(dropout, weight_init), _Explode())
        self.models.append(weakref.ref(model))
        return model


def test_a_failing_trial_does_not_keep_its_model_alive(make_config: ConfigFactory) -> None:
    task = _FailingTask({"n_train": 256, "n_val": 64})
    with pytest.raises(RuntimeError, match="simulated failure") as info:
        train_trial(make_config(batch_size=32), task)
    # Still holding the exception and its traceback, as an OOM handler would,
    # and without a garbage collection: nothing may keep the model alive.
    assert info.value.__traceback__ is not None
    assert task.models[0]() is None


def test_unknown_direction_is_rejected(
    small_synthetic: SyntheticTask, make_config: ConfigFactory
) -> None:
    with pytest.raises(ValueError, match="direction must be"):
        train_trial(make_config(), small_synthetic, direction="up")
