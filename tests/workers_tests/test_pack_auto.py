"""``--pack auto``: pack only where measured to help (CPU, no convolutions), and bad values."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

from lrsearch import storage
from lrsearch.cli.main import app
from lrsearch.search_space import TrialConfig, parse_definition
from lrsearch.workers._pack_auto import AUTO_CPU_DENSE, pack_limit
from lrsearch.workers.loop import WorkerOptions, run_worker
from lrsearch.workers.packing import pack_key
from lrsearch.workers.settings import WorkerSettings, parse_pack
from lrsearch.workers.tasks import NpzClassifierTask, SyntheticTask

PACK_LINE = re.compile(r"pack of (\d+) \(K=(\d+)\)")
ALLOWED = "'auto' or a whole number from 1 to 256"


def _config() -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "schedule": {"type": "step", "step_size": 1, "gamma": 1.0},
            "learning_rate": 0.05,
            "batch_size": 32,
            "dropout": 0.0,
            "max_epochs": 2,
        }
    )


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A tiny image file: ``npz-classifier`` gives it the two-convolution CNN."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=96)
    x = rng.normal(size=(96, 1, 8, 8)).astype(np.float32)
    x[np.arange(96), 0, labels * 2, :] += 2.0
    path = tmp_path / "images.npz"
    np.savez(path, x_train=x[:64], y_train=labels[:64], x_val=x[64:], y_val=labels[64:])
    return path


def _cnn_key(path: Path) -> Any:
    task = NpzClassifierTask({"path": str(path)})
    task.load_data(0)
    key = pack_key(_config(), task)
    assert key is not None  # the CNN can be packed; auto chooses not to on CPU
    return key


def test_auto_packs_16_models_without_convolutions_on_cpu() -> None:
    key = pack_key(_config(), SyntheticTask({"n_train": 64, "n_val": 32}))
    assert key is not None
    assert AUTO_CPU_DENSE == 16
    assert pack_limit("auto", key, "cpu") == 16
    assert pack_limit("auto", key, torch.device("cpu")) == 16


def test_auto_trains_convolutional_models_on_cpu_one_at_a_time(images: Path) -> None:
    key = _cnn_key(images)
    assert pack_limit("auto", key, "cpu") == 1
    assert pack_limit(4, key, "cpu") == 4  # a number is used as given


def test_auto_does_not_pack_on_cuda_where_it_is_not_measured(images: Path) -> None:
    mlp = pack_key(_config(), SyntheticTask({"n_train": 64, "n_val": 32}))
    for key in (mlp, _cnn_key(images)):
        assert pack_limit("auto", key, torch.device("cuda:0")) == 1
        assert pack_limit("auto", key, "cuda") == 1
    assert pack_limit(8, mlp, "cuda") == 8


def test_auto_leaves_unpackable_models_alone() -> None:
    assert pack_limit("auto", None, "cpu") == 1


@pytest.mark.parametrize(
    ("raw", "expected"), [("auto", "auto"), (" AUTO ", "auto"), ("16", 16), (1, 1), (256, 256)]
)
def test_pack_settings_accept_auto_and_whole_numbers(raw: Any, expected: Any) -> None:
    assert parse_pack(raw) == expected
    assert WorkerSettings(pack=raw).pack == expected


@pytest.mark.parametrize("raw", [0, 257, -1, "0", "four", "", "2.5", 2.5, True, None])
def test_bad_pack_values_name_the_allowed_ones(raw: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(ALLOWED)):
        parse_pack(raw)
    with pytest.raises(ValidationError) as err:
        WorkerSettings(pack=raw)
    assert ALLOWED in str(err.value)


def test_the_environment_variable_takes_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRSEARCH_PACK", "auto")
    assert WorkerSettings().pack == "auto"
    assert WorkerOptions().pack == "auto"
    monkeypatch.setenv("LRSEARCH_PACK", "many")
    with pytest.raises(ValidationError, match=re.escape(ALLOWED)):
        WorkerSettings()


def test_the_worker_cli_lists_the_allowed_values() -> None:
    runner = CliRunner()
    for bad in ("0", "257", "four", "autox"):
        result = runner.invoke(app, ["worker", "--pack", bad])
        assert result.exit_code == 2, result.output
        assert "--pack" in result.output
        assert ALLOWED in result.output
    result = runner.invoke(app, ["worker"], env={"LRSEARCH_PACK": "nope"})
    assert result.exit_code == 2
    assert "LRSEARCH_PACK" in result.output
    assert ALLOWED in result.output


def test_a_worker_rejects_a_bad_pack_before_it_starts(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match=re.escape(ALLOWED)):
        run_worker(WorkerOptions(storage_url=sqlite_url, pack=0))


def _run(url: str, name: str, task: str, options: dict[str, Any], trials: int) -> None:
    backend = storage.open_backend(url)
    try:
        raw = {
            "name": name,
            "task": task,
            "task_options": options,
            "budget": {"n_trials": trials, "max_epochs": 2},
            "sampler": {"type": "random", "seed": 1},
            "pruner": {"type": "none"},
            "confirm": {"top_k": 0},
            "search_space": {"warmup_epochs": 0, "batch_size": [32], "optimizer": ["sgd"]},
        }
        storage.create_study(backend, parse_definition(raw))
    finally:
        backend.dispose()
    stats = run_worker(
        WorkerOptions(
            storage_url=url,
            study=name,
            device="cpu",
            idle_exit=2.0,
            poll_interval=0.1,
            install_signal_handlers=False,
            pack="auto",
        )
    )
    assert stats.trials == trials
    assert stats.by_state == {"COMPLETE": trials}


def test_a_worker_with_auto_packs_an_mlp_study_and_not_a_cnn_study(
    sqlite_url: str, images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lrsearch.workers.loop")
    _run(sqlite_url, "auto-mlp", "synthetic", {"n_train": 128, "n_val": 64}, 5)
    sizes = [PACK_LINE.search(r.getMessage()) for r in caplog.records]
    packs = [(int(m.group(1)), int(m.group(2))) for m in sizes if m]
    assert packs, "no pack line in the log"
    assert packs[0] == (5, 16)  # all five trials in one pack of up to 16
    caplog.clear()
    _run(sqlite_url, "auto-cnn", "npz-classifier", {"path": str(images)}, 3)
    assert not [r for r in caplog.records if PACK_LINE.search(r.getMessage())]
