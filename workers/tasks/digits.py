"""``digits-mlp``: scikit-learn's bundled 8x8 handwritten digits and an MLP.

The data ships with scikit-learn (1,797 images), so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from lrsearch.workers.models import init_weights, make_mlp
from lrsearch.workers.tasks._registry import TaskData, check_options

_VAL_FRACTION = 0.2
_HIDDEN = (128, 64)


class DigitsMLPTask:
    """8x8 digits, standardised, stratified 80/20 split; MLP ``64 -> 128 -> 64 -> 10``.

    Takes no options.
    """

    name = "digits-mlp"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        check_options(self.name, dict(options or {}), set())
        self._cache: dict[int, TaskData] = {}

    def load_data(self, seed: int) -> TaskData:
        """Split (once per seed) and standardise with the training split's statistics.

        Args:
            seed: The study's ``data_seed``; fixes the stratified train/validation split.
        """
        if seed not in self._cache:
            # Imported here: scikit-learn takes a while to import and only this task needs it.
            from sklearn.datasets import load_digits
            from sklearn.model_selection import train_test_split

            bunch = load_digits()
            images = np.asarray(bunch.data, dtype=np.float64)
            labels = np.asarray(bunch.target, dtype=np.int64)
            x_train, x_val, y_train, y_val = train_test_split(
                images, labels, test_size=_VAL_FRACTION, random_state=seed, stratify=labels
            )
            mean = x_train.mean(axis=0)
            std = x_train.std(axis=0)
            std[std == 0.0] = 1.0  # border pixels that are blank in every training image
            self._cache[seed] = TaskData(
                x_train=_floats((x_train - mean) / std),
                y_train=torch.from_numpy(np.asarray(y_train, dtype=np.int64)),
                x_val=_floats((x_val - mean) / std),
                y_val=torch.from_numpy(np.asarray(y_val, dtype=np.int64)),
                num_classes=10,
            )
        return self._cache[seed]

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        """An MLP ``64 -> 128 -> 64 -> 10`` with dropout after each hidden layer."""
        return init_weights(make_mlp(64, _HIDDEN, 10, dropout=dropout), weight_init)


def _floats(array: Any) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float32))
