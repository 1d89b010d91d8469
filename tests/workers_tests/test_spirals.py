"""``spirals-mlp``: registered, deterministic given data_seed, quick, and schedule-sensitive."""

from __future__ import annotations

import time

import pytest
import torch

from lrsearch.search_space import TrialConfig
from lrsearch.workers import TaskError
from lrsearch.workers.tasks import Task, get_task, task_names
from lrsearch.workers.tasks.spirals import SpiralsTask
from lrsearch.workers.training import train_trial


@pytest.fixture(scope="module")
def spirals() -> Task:
    return get_task("spirals-mlp")


def test_registered_and_loads_with_its_default_size(spirals: Task) -> None:
    assert "spirals-mlp" in task_names()
    data = spirals.load_data(0)
    assert tuple(data.x_train.shape) == (4000, 10)
    assert tuple(data.x_val.shape) == (1000, 10)
    assert data.num_classes == 4
    # Every class is present in both splits (the generator draws labels uniformly).
    assert set(data.y_train.tolist()) == set(data.y_val.tolist()) == {0, 1, 2, 3}


def test_the_data_depends_only_on_data_seed() -> None:
    first, again, other = SpiralsTask(), SpiralsTask(), SpiralsTask()
    a, b, c = first.load_data(3), again.load_data(3), other.load_data(4)
    for name in ("x_train", "y_train", "x_val", "y_val"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.x_train, c.x_train)
    # The global RNG plays no part.
    torch.manual_seed(99)
    assert torch.equal(SpiralsTask().load_data(3).x_val, a.x_val)


def test_label_noise_flips_training_labels_only() -> None:
    clean = SpiralsTask({"label_noise": 0.0}).load_data(0)
    noisy = SpiralsTask({"label_noise": 0.3}).load_data(0)
    assert torch.equal(clean.x_train, noisy.x_train)
    assert torch.equal(clean.y_val, noisy.y_val)
    changed = (clean.y_train != noisy.y_train).float().mean().item()
    # 30% are redrawn, a quarter of those land on their own class again: about 22%.
    assert 0.18 < changed < 0.27


def test_bad_options_are_all_listed() -> None:
    with pytest.raises(TaskError) as caught:
        SpiralsTask({"n_classes": 1, "label_noise": 1.5, "hidden": "wide", "colour": 1})
    message = str(caught.value)
    for part in ("colour", "n_classes", "label_noise", "hidden"):
        assert part in message


def _config(schedule: dict[str, object], lr: float, epochs: int) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "schedule": schedule,
            "learning_rate": lr,
            "batch_size": 64,
            "dropout": 0.1,
            "max_epochs": epochs,
        }
    )


def test_one_trial_trains_in_seconds_and_learns(spirals: Task) -> None:
    started = time.perf_counter()
    result = train_trial(_config({"type": "cosine", "eta_min": 0.0}, 0.3, 5), spirals, seed=1)
    assert time.perf_counter() - started < 10.0
    assert result.status == "complete"
    assert result.value is not None
    assert result.value > 0.4  # chance is 0.25 with four classes


def test_a_decaying_schedule_beats_a_constant_rate(spirals: Task) -> None:
    # Why the task exists: at a learning rate large enough to learn the spirals,
    # a constant rate keeps bouncing on the noisy labels; cosine decay settles.
    constant = train_trial(
        _config({"type": "step", "step_size": 100, "gamma": 1.0}, 0.3, 20), spirals, seed=1
    )
    cosine = train_trial(_config({"type": "cosine", "eta_min": 0.0}, 0.3, 20), spirals, seed=1)
    assert constant.value is not None
    assert cosine.value is not None
    assert cosine.value > constant.value + 0.1
