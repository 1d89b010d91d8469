"""The task registry (real entry points) and the built-in tasks' data and models."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrsearch.workers import TaskDataError, TaskError, UnknownTaskError, WorkerError
from lrsearch.workers.tasks import (
    DigitsMLPTask,
    NpzClassifierTask,
    SyntheticTask,
    Task,
    TaskData,
    get_task,
    task_names,
)
from lrsearch.workers.training import train_trial
from tests.workers_tests.conftest import ConfigFactory

BUILT_INS = {
    "digits-mlp": DigitsMLPTask,
    "synthetic": SyntheticTask,
    "npz-classifier": NpzClassifierTask,
}


def _write_npz(path: Path, x_shape: tuple[int, ...], **overrides: object) -> Path:
    rng, classes = np.random.default_rng(0), 3
    arrays: dict[str, object] = {
        "x_train": rng.normal(size=(60, *x_shape)).astype(np.float64),
        "y_train": rng.integers(0, classes, size=60),
        "x_val": rng.normal(size=(20, *x_shape)).astype(np.float32),
        "y_val": rng.integers(0, classes, size=20).astype(np.int32),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})  # type: ignore[arg-type]
    return path


# --- registry ----------------------------------------------------------------


def test_the_three_built_ins_are_registered() -> None:
    assert set(BUILT_INS) <= set(task_names())


@pytest.mark.parametrize(("name", "cls"), list(BUILT_INS.items()))
def test_get_task_builds_the_registered_class(
    name: str, cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRSEARCH_TASK_NPZ", str(_write_npz(tmp_path / "d.npz", (4,))))
    task = get_task(name)
    assert isinstance(task, cls)
    assert isinstance(task, Task)
    assert task.name == name


def test_unknown_task_lists_the_registered_names() -> None:
    with pytest.raises(UnknownTaskError) as info:
        get_task("no-such-task")
    message = str(info.value)
    assert "no-such-task" in message
    assert all(name in message for name in BUILT_INS)
    assert isinstance(info.value, WorkerError)
    assert set(BUILT_INS) <= set(info.value.registered)


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(TaskError, match=r"unknown options \['n_trian'\]"):
        get_task("synthetic", {"n_trian": 10})


def _install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, entry_points: str) -> None:
    """A third-party distribution, found by importlib.metadata on sys.path."""
    (root / "my_tasks.py").write_text(
        textwrap.dedent(
            """
            from lrsearch.workers.tasks import SyntheticTask

            class Tiny(SyntheticTask):
                name = "tiny"

                def __init__(self, options):
                    super().__init__({"n_train": 32, "n_val": 16, **options})

            def not_a_task(options):
                return object()
            """
        )
    )
    dist = root / "my_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lrsearch.tasks]\n" + entry_points)
    monkeypatch.syspath_prepend(str(root))


def test_third_party_tasks_register_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(
        tmp_path,
        monkeypatch,
        "tiny = my_tasks:Tiny\nbogus = my_tasks:not_a_task\nbroken = my_tasks_missing:X\n",
    )
    assert {"tiny", "bogus", "broken"} <= set(task_names())
    task = get_task("tiny", {"hidden": 4})
    assert task.load_data(0).x_train.shape == (32, 20)
    with pytest.raises(TaskError, match="does not implement the Task protocol"):
        get_task("bogus")
    with pytest.raises(TaskError, match="cannot be loaded"):
        get_task("broken")


def test_task_data_rejects_inconsistent_tensors() -> None:
    with pytest.raises(TaskDataError) as info:
        TaskData(
            x_train=torch.zeros(10, 3),
            y_train=torch.zeros(9, dtype=torch.int64),
            x_val=torch.zeros(4, 2, dtype=torch.float64),
            y_val=torch.tensor([0, 1, 2, 5]),
            num_classes=3,
        )
    message = str(info.value)
    assert "x_train has 10 rows but y_train 9" in message
    assert "x_val must be float32" in message
    assert "y_val has labels outside [0, 3)" in message
    assert "x_train examples have shape (3,) but x_val examples (2,)" in message


# --- synthetic and digits --------------------------------------------------------


def test_synthetic_data_is_deterministic_by_seed() -> None:
    a, b, c = (
        SyntheticTask().load_data(1),
        SyntheticTask().load_data(1),
        SyntheticTask().load_data(2),
    )
    assert a.x_train.shape == (2000, 20)
    assert a.x_val.shape == (500, 20)
    assert a.num_classes == 4
    assert torch.equal(a.x_train, b.x_train)
    assert torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)


def test_digits_split_is_stratified_standardised_and_fixed_by_seed() -> None:
    task = DigitsMLPTask()
    data = task.load_data(0)
    assert data.x_train.shape == (1437, 64)
    assert data.x_val.shape == (360, 64)
    assert data.num_classes == 10
    assert torch.bincount(data.y_val, minlength=10).min() >= 35  # every digit, ~36 each
    assert data.x_train.mean(dim=0).abs().max() < 1e-5
    assert torch.equal(DigitsMLPTask().load_data(0).y_val, data.y_val)
    assert not torch.equal(DigitsMLPTask().load_data(1).y_val, data.y_val)


def test_digits_model_is_64_128_64_10() -> None:
    model = DigitsMLPTask().build_model(dropout=0.1, weight_init="default")
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(64, 128), (128, 64), (64, 10)]


def test_digits_trains(make_config: ConfigFactory) -> None:
    result = train_trial(make_config(max_epochs=2, learning_rate=0.05), get_task("digits-mlp"))
    assert result.status == "complete"
    assert result.value is not None
    assert result.value > 0.6


# --- npz ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_shape", "conv"), [((12,), False), ((8, 8), True), ((3, 6, 5), True)], ids=str
)
def test_npz_task_trains_on_flat_and_image_inputs(
    tmp_path: Path, make_config: ConfigFactory, x_shape: tuple[int, ...], conv: bool
) -> None:
    path = _write_npz(tmp_path / "data.npz", x_shape)
    task = get_task("npz-classifier", {"path": str(path)})
    data = task.load_data(0)
    assert data.x_train.dtype == torch.float32
    assert data.y_val.dtype == torch.int64
    assert data.num_classes == 3
    model = task.build_model(dropout=0.1, weight_init="kaiming_normal")
    assert any(isinstance(m, nn.Conv2d) for m in model.modules()) == conv
    result = train_trial(make_config(max_epochs=2, batch_size=16), task)
    assert result.status == "complete"
    assert result.epochs_run == 2


def test_npz_path_falls_back_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write_npz(tmp_path / "env.npz", (5,))
    monkeypatch.setenv("LRSEARCH_TASK_NPZ", str(path))
    assert get_task("npz-classifier").load_data(0).x_train.shape == (60, 5)


def test_npz_without_a_path_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LRSEARCH_TASK_NPZ", raising=False)
    with pytest.raises(TaskError, match="needs options\\['path'\\] or the LRSEARCH_TASK_NPZ"):
        get_task("npz-classifier")


def test_npz_missing_key_names_it(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "partial.npz", (4,), y_val=None)
    task = get_task("npz-classifier", {"path": str(path)})
    with pytest.raises(TaskDataError, match=r"missing arrays \['y_val'\]"):
        task.load_data(0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"x_val": np.zeros((20, 5))}, "x_train examples have shape (4,) but x_val examples (5,)"),
        ({"y_train": np.zeros(59, dtype=np.int64)}, "x_train has 60 rows but y_train 59"),
        ({"y_train": np.full(60, 0.5)}, "y_train must hold integer class labels"),
        ({"y_val": np.zeros((20, 2), dtype=np.int64)}, "y_val must be one-dimensional"),
        ({"x_train": np.zeros((60, 1, 1, 2, 2))}, "x_train must be (N, F), (N, H, W) or"),
        ({"x_val": np.full((20, 4), np.nan)}, "x_val contains NaN"),
    ],
)
def test_npz_inconsistent_arrays_are_clear_errors(
    tmp_path: Path, override: dict[str, object], message: str
) -> None:
    path = _write_npz(tmp_path / "bad.npz", (4,), **override)
    with pytest.raises(TaskDataError) as info:
        get_task("npz-classifier", {"path": str(path)}).load_data(0)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_npz_unreadable_file_is_a_task_data_error(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_text("not a zip file")
    for name in ("junk.npz", "absent.npz"):
        task = get_task("npz-classifier", {"path": str(tmp_path / name)})
        with pytest.raises(TaskDataError, match="cannot read the file"):
            task.load_data(0)
