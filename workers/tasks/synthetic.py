"""``synthetic``: Gaussian blobs and a tiny MLP, for tests, demos and benchmarks.

Ten epochs on the default size take a fraction of a second on one CPU core,
and the learning rate matters: a good one reaches high validation accuracy
within a few epochs while a tiny one stays near chance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from lrsearch.workers._errors import TaskError
from lrsearch.workers.models import init_weights, make_mlp
from lrsearch.workers.tasks._registry import TaskData, unknown_options

_DEFAULTS: dict[str, float] = {
    "n_train": 2000,
    "n_val": 500,
    "n_features": 20,
    "n_classes": 4,
    "hidden": 32,
    # Scale of the class centres; 0.6 leaves some overlap (~90% reachable).
    "separation": 0.6,
}
_INTEGER_OPTIONS = ("n_train", "n_val", "n_features", "n_classes", "hidden")


class SyntheticTask:
    """Blobs: ``n_classes`` Gaussian clusters in ``n_features`` dimensions.

    Options (all optional): ``n_train`` (2000), ``n_val`` (500),
    ``n_features`` (20), ``n_classes`` (4), ``hidden`` (32, width of the single
    hidden layer), ``separation`` (0.6, scale of the class centres relative to
    the unit noise; larger is easier).
    """

    name = "synthetic"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        # Every bad option in one message: a study fails its trials on it.
        problems = unknown_options(self.name, options, set(_DEFAULTS))
        values = {**_DEFAULTS, **options}
        for key in _INTEGER_OPTIONS:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"synthetic: option {key!r} must be a positive integer")
            elif key == "n_classes" and value < 2:
                problems.append("synthetic: option 'n_classes' must be at least 2")
        separation = values["separation"]
        if isinstance(separation, bool) or not isinstance(separation, int | float):
            problems.append("synthetic: option 'separation' must be a number")
        if problems:
            raise TaskError("; ".join(problems))
        self.n_train = int(values["n_train"])
        self.n_val = int(values["n_val"])
        self.n_features = int(values["n_features"])
        self.n_classes = int(values["n_classes"])
        self.hidden = int(values["hidden"])
        self.separation = float(separation)
        self._cache: dict[int, TaskData] = {}

    def load_data(self, seed: int) -> TaskData:
        """Generate (once per seed) the train and validation points.

        Args:
            seed: The study's ``data_seed``; seeds the class centres, the labels and the noise.
        """
        if seed not in self._cache:
            rng = np.random.default_rng(seed)
            centres = rng.normal(size=(self.n_classes, self.n_features)) * self.separation
            n = self.n_train + self.n_val
            labels = rng.integers(0, self.n_classes, size=n)
            points = centres[labels] + rng.normal(size=(n, self.n_features))
            x = torch.from_numpy(points.astype(np.float32))
            y = torch.from_numpy(labels.astype(np.int64))
            self._cache[seed] = TaskData(
                x_train=x[: self.n_train],
                y_train=y[: self.n_train],
                x_val=x[self.n_train :],
                y_val=y[self.n_train :],
                num_classes=self.n_classes,
            )
        return self._cache[seed]

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        """An MLP ``n_features -> hidden -> n_classes``."""
        model = make_mlp(self.n_features, [self.hidden], self.n_classes, dropout=dropout)
        return init_weights(model, weight_init)
