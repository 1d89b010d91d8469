"""``spirals-mlp``: interleaved noisy spirals, hidden among distractor features, and an MLP.

A schedule-sensitive benchmark task. On digits-mlp every sensible
configuration ends within a few validation images of 0.98, so search methods
cannot be told apart. Here the decision boundary is a many-turn spiral that a
small MLP only fits with a well-chosen learning rate, and a part of the
training labels is flipped: a constant rate large enough to learn the spirals
keeps bouncing on the noisy labels, while a schedule that decays it settles.
See docs/benchmarks.md for the measured spread. Generated with numpy, so
nothing is downloaded; a trial of 20 epochs takes a few seconds on one core.
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
    "n_train": 4000,
    "n_val": 1000,
    "n_classes": 4,
    # Turns of each spiral arm: more turns, a harder boundary.
    "turns": 1.5,
    # Angular jitter (radians, standard deviation) of each point around its arm.
    "noise": 0.25,
    # Pure-noise input features mixed with the two informative ones.
    "distractors": 8,
    # Fraction of training labels replaced by a random class (validation stays clean).
    "label_noise": 0.2,
    "hidden": 64,
    "depth": 2,
}
_INTEGER_OPTIONS = ("n_train", "n_val", "n_classes", "distractors", "hidden", "depth")
_FRACTION_OPTIONS = ("label_noise",)


class SpiralsTask:
    """Spirals: ``n_classes`` interleaved arms in 2-D, rotated into ``2 + distractors`` dims.

    Options (all optional): ``n_train`` (4000), ``n_val`` (1000),
    ``n_classes`` (4), ``turns`` (1.5), ``noise`` (0.25 rad), ``distractors``
    (8), ``label_noise`` (0.2, training labels only), ``hidden`` (64, width of
    each hidden layer), ``depth`` (2 hidden layers). The data depends only on
    the study's ``data_seed``.
    """

    name = "spirals-mlp"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        # Every bad option in one message: a study fails its trials on it.
        problems = unknown_options(self.name, options, set(_DEFAULTS))
        values = {**_DEFAULTS, **options}
        for key, value in values.items():
            if key not in _DEFAULTS:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{self.name}: option {key!r} must be a number")
            elif key in _INTEGER_OPTIONS and (not isinstance(value, int) or value < 0):
                problems.append(f"{self.name}: option {key!r} must be a non-negative integer")
            elif key in _FRACTION_OPTIONS and not 0.0 <= value < 1.0:
                problems.append(f"{self.name}: option {key!r} must be in [0, 1)")
            elif value < 0:
                problems.append(f"{self.name}: option {key!r} must not be negative")
        for key, least in (("n_train", 1), ("n_val", 1), ("n_classes", 2), ("hidden", 1)):
            value = values[key]
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < least:
                problems.append(f"{self.name}: option {key!r} must be at least {least}")
        if problems:
            raise TaskError("; ".join(problems))
        self.n_train = int(values["n_train"])
        self.n_val = int(values["n_val"])
        self.n_classes = int(values["n_classes"])
        self.turns = float(values["turns"])
        self.noise = float(values["noise"])
        self.distractors = int(values["distractors"])
        self.label_noise = float(values["label_noise"])
        self.hidden = int(values["hidden"])
        self.depth = int(values["depth"])
        self._cache: dict[int, TaskData] = {}

    @property
    def n_features(self) -> int:
        return 2 + self.distractors

    def load_data(self, seed: int) -> TaskData:
        """Generate (once per seed) the points, the flipped labels and the split.

        Args:
            seed: The study's ``data_seed``; seeds the points, the rotation,
                the distractors and which training labels are flipped.
        """
        if seed not in self._cache:
            rng = np.random.default_rng(seed)
            n = self.n_train + self.n_val
            labels = rng.integers(0, self.n_classes, size=n)
            t = np.sqrt(rng.uniform(0.05, 1.0, size=n))  # even density along the arm
            angle = 2 * np.pi * (self.turns * t + labels / self.n_classes)
            angle = angle + rng.normal(scale=self.noise, size=n)
            plane = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) * 2.0
            noise = rng.normal(size=(n, self.distractors))
            # A random rotation spreads the two informative directions over every feature.
            rotation, _ = np.linalg.qr(rng.normal(size=(self.n_features, self.n_features)))
            x = np.concatenate([plane, noise], axis=1) @ rotation
            y_train = labels[: self.n_train].copy()
            flip = rng.uniform(size=self.n_train) < self.label_noise
            y_train[flip] = rng.integers(0, self.n_classes, size=int(flip.sum()))
            x = (x - x[: self.n_train].mean(axis=0)) / x[: self.n_train].std(axis=0)
            self._cache[seed] = TaskData(
                x_train=torch.from_numpy(x[: self.n_train].astype(np.float32)),
                y_train=torch.from_numpy(y_train.astype(np.int64)),
                x_val=torch.from_numpy(x[self.n_train :].astype(np.float32)),
                y_val=torch.from_numpy(labels[self.n_train :].astype(np.int64)),
                num_classes=self.n_classes,
            )
        return self._cache[seed]

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        """An MLP ``(2 + distractors) -> hidden x depth -> n_classes``."""
        model = make_mlp(
            self.n_features, [self.hidden] * self.depth, self.n_classes, dropout=dropout
        )
        return init_weights(model, weight_init)
