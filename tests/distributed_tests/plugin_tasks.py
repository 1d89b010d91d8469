"""Test tasks, installed by the ``plugin_path`` fixture as a third-party entry-point plugin.

- ``test-oom``: the synthetic task whose model raises a real
  ``torch.cuda.OutOfMemoryError`` on batches of 128 or more, as a GPU would for a
  batch size that does not fit; smaller batches train normally.
- ``test-slow``: one training batch per epoch that sleeps ``LRSEARCH_TEST_EPOCH_S``
  seconds (default 2): an epoch far longer than a signal needs to arrive. It
  touches the file ``LRSEARCH_TEST_EPOCH_MARKER`` (if set) as the sleep begins,
  so a test knows when the process is inside an epoch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrsearch.workers.tasks import SyntheticTask

OOM_FROM_BATCH = 128


class _OomAbove(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] >= OOM_FROM_BATCH:
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB (test-oom task)"
            )
        return self.inner(x)


class OomTask(SyntheticTask):
    name = "test-oom"

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        return _OomAbove(super().build_model(dropout, weight_init))


class _Slow(nn.Module):
    def __init__(self, inner: nn.Module, seconds: float) -> None:
        super().__init__()
        self.inner = inner
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            marker = os.environ.get("LRSEARCH_TEST_EPOCH_MARKER")
            if marker:
                Path(marker).touch()
            time.sleep(self.seconds)
        return self.inner(x)


class SlowTask(SyntheticTask):
    name = "test-slow"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        # One batch of 256 per epoch, whatever the batch size sampled (<= 256).
        super().__init__({"n_train": 256, "n_val": 64, **dict(options or {})})
        self.seconds = float(os.environ.get("LRSEARCH_TEST_EPOCH_S", "2"))

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        return _Slow(super().build_model(dropout, weight_init), self.seconds)
