"""``npz-classifier``: a user's own classification data from a ``.npz`` file.

The file holds four arrays: ``x_train``, ``y_train``, ``x_val``, ``y_val``.
Flat inputs ``(N, F)`` get a small MLP; images ``(N, H, W)`` or ``(N, C, H, W)``
get a small CNN. Labels are integers in ``[0, num_classes)``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from lrsearch.workers._errors import TaskDataError, TaskError
from lrsearch.workers.models import init_weights, make_cnn, make_mlp
from lrsearch.workers.settings import WorkerSettings, env_name
from lrsearch.workers.tasks._registry import TaskData, unknown_options

PATH_ENV = env_name("task_npz")
REQUIRED_KEYS = ("x_train", "y_train", "x_val", "y_val")
_MLP_HIDDEN = (128, 64)


class NpzClassifierTask:
    """Classification on arrays from a ``.npz`` file.

    Options: ``path`` (the file; defaults to the ``LRSEARCH_TASK_NPZ``
    environment variable) and ``num_classes`` (defaults to the largest label
    plus one).

    Raises:
        TaskError: On construction, when no path is given or an option is unknown.
    """

    name = "npz-classifier"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        # Every bad option in one message: a study fails its trials on it.
        problems = unknown_options(self.name, options, {"path", "num_classes"})
        path = options.get("path") or WorkerSettings().task_npz
        if not path:
            problems.append(f"npz-classifier needs options['path'] or the {PATH_ENV} variable")
        elif not isinstance(path, str):
            problems.append("npz-classifier: option 'path' must be a string (a file path)")
        num_classes = options.get("num_classes")
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            problems.append("npz-classifier: option 'num_classes' must be an integer >= 2")
        if problems:
            raise TaskError("; ".join(problems))
        self.path = Path(str(path))  # a str: checked above
        self.num_classes: int | None = num_classes
        self._data: TaskData | None = None

    def load_data(self, seed: int) -> TaskData:
        """Read and check the file (once; the split is the file's, so ``seed`` is unused).

        Raises:
            TaskDataError: The file is missing or unreadable, a key is missing,
                or the arrays' shapes, dtypes or labels are inconsistent.
        """
        if self._data is None:
            self._data = _read(self.path, self.num_classes)
        return self._data

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        """An MLP ``F -> 128 -> 64 -> classes`` for flat inputs, else a small CNN."""
        data = self.load_data(0)
        shape = data.input_shape
        model: nn.Module
        if len(shape) == 1:
            model = make_mlp(shape[0], _MLP_HIDDEN, data.num_classes, dropout=dropout)
        else:
            model = make_cnn(shape[0], data.num_classes, dropout=dropout)
        return init_weights(model, weight_init)


def _read(path: Path, num_classes: int | None) -> TaskData:
    where = f"npz-classifier ({path})"
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in REQUIRED_KEYS if k not in archive.files]
            if missing:
                raise TaskDataError(
                    f"{where}: missing arrays {missing}; found {sorted(archive.files)}"
                )
            arrays = {k: np.asarray(archive[k]) for k in REQUIRED_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TaskDataError(f"{where}: cannot read the file: {exc}") from exc

    problems: list[str] = []
    xs = {k: _inputs(k, arrays[k], problems) for k in ("x_train", "x_val")}
    ys = {k: _labels(k, arrays[k], problems) for k in ("y_train", "y_val")}
    if problems:
        raise TaskDataError(f"{where}: " + "; ".join(problems))
    classes = num_classes or int(max(ys["y_train"].max(), ys["y_val"].max())) + 1
    try:
        return TaskData(
            x_train=xs["x_train"],
            y_train=ys["y_train"],
            x_val=xs["x_val"],
            y_val=ys["y_val"],
            num_classes=classes,
        )
    except TaskDataError as exc:
        raise TaskDataError(f"{where}: {exc}") from None


def _inputs(key: str, array: npt.NDArray[Any], problems: list[str]) -> torch.Tensor:
    if array.dtype.kind not in "biuf":
        problems.append(f"{key} must be numeric, got dtype {array.dtype}")
        return torch.empty(0)
    if array.ndim not in (2, 3, 4):
        problems.append(f"{key} must be (N, F), (N, H, W) or (N, C, H, W), got {array.shape}")
        return torch.empty(0)
    x = array.astype(np.float32)
    if not np.isfinite(x).all():
        problems.append(f"{key} contains NaN or infinite values")
    if x.ndim == 3:
        x = x[:, None, :, :]  # one channel
    return torch.from_numpy(np.ascontiguousarray(x))


def _labels(key: str, array: npt.NDArray[Any], problems: list[str]) -> torch.Tensor:
    if array.ndim != 1:
        problems.append(f"{key} must be one-dimensional, got shape {array.shape}")
        return torch.empty(0, dtype=torch.int64)
    if array.size == 0:
        problems.append(f"{key} is empty")
        return torch.empty(0, dtype=torch.int64)
    if array.dtype.kind not in "biuf" or (
        array.dtype.kind == "f" and not np.array_equal(array, np.round(array))
    ):
        problems.append(f"{key} must hold integer class labels, got dtype {array.dtype}")
        return torch.empty(0, dtype=torch.int64)
    if array.min() < 0:
        problems.append(f"{key} has negative labels")
    return torch.from_numpy(array.astype(np.int64))
