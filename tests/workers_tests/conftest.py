"""Shared fixtures for the workers tests: real PyTorch on tiny tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from lrsearch.search_space import TrialConfig
from lrsearch.workers.tasks import SyntheticTask

ConfigFactory = Callable[..., TrialConfig]


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    # The models are tiny: thread start-up would cost more than it saves.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic() -> SyntheticTask:
    """The built-in synthetic task at its default size (data cached per seed)."""
    return SyntheticTask()


@pytest.fixture(scope="session")
def small_synthetic() -> SyntheticTask:
    """A smaller synthetic task for tests that only need a few quick epochs."""
    return SyntheticTask({"n_train": 256, "n_val": 128})


@pytest.fixture
def make_config() -> ConfigFactory:
    """Build a :class:`TrialConfig`; ``schedule`` defaults to a constant (step, gamma 1)."""

    def factory(**overrides: Any) -> TrialConfig:
        fields: dict[str, Any] = {
            "schedule": {"type": "step", "step_size": 1, "gamma": 1.0},
            "learning_rate": 0.05,
            "batch_size": 64,
            "dropout": 0.0,
            "max_epochs": 10,
        }
        fields.update(overrides)
        return TrialConfig.model_validate(fields)

    return factory
