"""Packed training: every slot of a pack trains as its own solo run would, on CPU."""

from __future__ import annotations

import importlib.util
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lrsearch.search_space import WEIGHT_INITS, TrialConfig
from lrsearch.workers import TrainingInterrupted
from lrsearch.workers.packing import PackedRun, SlotEpoch, pack_key, train_pack
from lrsearch.workers.tasks import NpzClassifierTask, Task, TaskData
from lrsearch.workers.tasks.spirals import SpiralsTask
from lrsearch.workers.training import TrainResult, _Run, train_trial

DATA_SEED = 11
RTOL, ATOL = 1e-4, 1e-5
SCHEDULES: list[dict[str, Any]] = [
    {"type": "step", "step_size": 1, "gamma": 0.7},
    {"type": "exponential", "gamma": 0.8},
    {"type": "cosine", "eta_min": 0.1},
    {"type": "plateau", "factor": 0.5, "patience": 0},
    {"type": "cyclic", "max_lr": 4.0, "step_size": 1, "mode": "triangular2"},
    {"type": "warmup", "start_factor": 0.2, "ramp_epochs": 2},
    {"type": "cyclic", "max_lr": 3.0, "step_size": 1, "mode": "exp_range"},
]
# Learning rates per optimizer that learn the spirals without diverging.
LEARNING_RATES = {"sgd": 0.05, "adam": 0.005, "adamw": 0.005, "rmsprop": 0.002, "adagrad": 0.05}
Solo = tuple[TrainResult, dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def spirals() -> SpiralsTask:
    return SpiralsTask({"n_train": 200, "n_val": 100, "hidden": 24})


def _config(**fields: Any) -> TrialConfig:
    values: dict[str, Any] = {
        "schedule": {"type": "step", "step_size": 1, "gamma": 0.9},
        "learning_rate": 0.05,
        "batch_size": 32,
        "dropout": 0.0,
        "max_epochs": 4,
    }
    values.update(fields)
    return TrialConfig.model_validate(values)


def _solo(config: TrialConfig, task: Task, seed: int) -> Solo:
    """As ``train_trial(config, task, seed=seed, data_seed=DATA_SEED)``, plus the final weights."""
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            run = _Run(config, task, torch.device("cpu"), (seed, DATA_SEED), False, "maximize")
            result = run.loop("val_accuracy", None, None)
            return result, {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    finally:
        np.random.set_state(numpy_state)


def _assert_curves_match(packed: TrainResult, solo: TrainResult) -> None:
    assert packed.status == solo.status
    assert packed.epochs_run == solo.epochs_run
    np.testing.assert_allclose(packed.lr_curve, solo.lr_curve, rtol=1e-12)
    assert len(packed.metrics) == len(solo.metrics)
    for mine, theirs in zip(packed.metrics, solo.metrics, strict=True):
        assert mine["epoch"] == theirs["epoch"]
        for name in ("train_loss", "val_loss", "val_accuracy", "lr"):
            np.testing.assert_allclose(mine[name], theirs[name], rtol=RTOL, atol=ATOL, err_msg=name)
    if solo.value is None:
        assert packed.value is None
    else:
        np.testing.assert_allclose(packed.value, solo.value, rtol=RTOL, atol=ATOL)


def _assert_weights_match(
    packed: Mapping[str, torch.Tensor], solo: Mapping[str, torch.Tensor]
) -> None:
    assert packed.keys() == solo.keys()
    for name, value in solo.items():
        torch.testing.assert_close(packed[name], value, rtol=RTOL, atol=ATOL, msg=name)


def _result_of(epochs: list[SlotEpoch]) -> TrainResult:
    result = TrainResult(value=None, epochs_run=len(epochs))
    for done in epochs:
        result.lr_curve.append(done.lr)
        if done.metrics is None:
            result.status = "diverged"
            result.value = None
        else:
            result.metrics.append(done.metrics)
            result.value = done.metrics["val_accuracy"]
    return result


def _mixed_configs(optimizer: str) -> list[TrialConfig]:
    """One trial per schedule type plus a warm-up prefix; inits, rates, decays and budgets mixed."""
    lr = LEARNING_RATES[optimizer]
    inits = list(WEIGHT_INITS)
    configs = []
    for i, schedule in enumerate([*SCHEDULES, SCHEDULES[0]]):
        configs.append(
            _config(
                schedule=schedule,
                optimizer=optimizer,
                learning_rate=lr * (0.5 + 0.25 * i),
                dropout=(0.0, 0.2, 0.5)[i % 3],
                weight_init=inits[i % len(inits)],
                weight_decay=(0.0, 1e-3)[i % 2],
                warmup_epochs=2 if i == len(SCHEDULES) else 0,
                max_epochs=3 + i % 2,  # slots leave the pack at different epochs
            )
        )
    return configs


def _run_pack(
    task: Task, configs: list[TrialConfig], seeds: list[int]
) -> tuple[dict[Hashable, list[SlotEpoch]], dict[Hashable, dict[str, torch.Tensor]]]:
    """Train the trials as one pack to the end; every slot's epochs and final weights."""
    pack = PackedRun(task, data_seed=DATA_SEED)
    for i, (config, seed) in enumerate(zip(configs, seeds, strict=True)):
        pack.add(i, config, seed)
    epochs: dict[Hashable, list[SlotEpoch]] = {i: [] for i in range(len(configs))}
    finals: dict[Hashable, dict[str, torch.Tensor]] = {}
    while len(pack):
        for key, done in pack.run_epoch().items():
            epochs[key].append(done)
            if done.finished:
                assert key not in pack
                finals[key] = pack.state_of(key)  # readable until the next epoch
    pack.release()
    return epochs, finals


def test_the_solo_reference_is_train_trial(spirals: SpiralsTask) -> None:
    config = _config(dropout=0.3, schedule=SCHEDULES[4])
    reference, _ = _solo(config, spirals, seed=5)
    result = train_trial(config, spirals, seed=5, data_seed=DATA_SEED)
    assert result.lr_curve == reference.lr_curve
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in result.metrics]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in reference.metrics]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_slot_of_a_pack_matches_its_solo_run(spirals: SpiralsTask, optimizer: str) -> None:
    configs = _mixed_configs(optimizer)
    seeds = [100 + i for i in range(len(configs))]
    epochs, finals = _run_pack(spirals, configs, seeds)
    for i, (config, seed) in enumerate(zip(configs, seeds, strict=True)):
        solo, weights = _solo(config, spirals, seed)
        assert solo.status == "complete"
        assert [e.epoch for e in epochs[i]] == list(range(config.max_epochs))
        assert [e.finished for e in epochs[i]] == [False] * (config.max_epochs - 1) + [True]
        _assert_curves_match(_result_of(epochs[i]), solo)
        _assert_weights_match(finals[i], weights)


def test_train_pack_returns_what_train_trial_returns(spirals: SpiralsTask) -> None:
    configs = _mixed_configs("sgd")[:3]
    seeds = [1, 2, 3]
    results = train_pack(configs, spirals, seeds=seeds, data_seed=DATA_SEED)
    for result, config, seed in zip(results, configs, seeds, strict=True):
        _assert_curves_match(result, train_trial(config, spirals, seed=seed, data_seed=DATA_SEED))
        assert all(m["seconds"] > 0 for m in result.metrics)


def test_slots_joining_late_and_leaving_early_match_their_solo_runs(spirals: SpiralsTask) -> None:
    lr = LEARNING_RATES["adam"]
    first = _config(optimizer="adam", learning_rate=lr, dropout=0.2, schedule=SCHEDULES[2])
    leaving = _config(optimizer="adam", learning_rate=2 * lr, dropout=0.5, max_epochs=10)
    late = _config(optimizer="adam", learning_rate=lr, weight_decay=0.01, schedule=SCHEDULES[4])
    pack = PackedRun(spirals, data_seed=DATA_SEED)
    pack.add("first", first, 1)
    pack.add("leaving", leaving, 2)
    seen: dict[Hashable, list[SlotEpoch]] = {"first": [], "leaving": [], "late": []}
    finals: dict[Hashable, dict[str, torch.Tensor]] = {}
    for epoch in range(7):
        if epoch == 2:
            left = pack.state_of("leaving")
            pack.remove("leaving")
            assert pack.keys() == ["first"]
        if epoch == 3:
            pack.add("late", late, 3)
        for key, done in pack.run_epoch().items():
            seen[key].append(done)
            if done.finished:
                finals[key] = pack.state_of(key)
    assert len(pack) == 0
    _assert_curves_match(_result_of(seen["first"]), _solo(first, spirals, 1)[0])
    _assert_weights_match(finals["first"], _solo(first, spirals, 1)[1])
    _assert_curves_match(_result_of(seen["late"]), _solo(late, spirals, 3)[0])
    _assert_weights_match(finals["late"], _solo(late, spirals, 3)[1])
    # Two epochs of a step schedule do not depend on the budget: compare with a 2-epoch run.
    two_epochs = leaving.model_copy(update={"max_epochs": 2})
    solo_leaving, solo_weights = _solo(two_epochs, spirals, 2)
    _assert_curves_match(_result_of(seen["leaving"]), solo_leaving)
    _assert_weights_match(left, solo_weights)
    assert [e.epoch for e in seen["late"]] == [0, 1, 2, 3]


def test_a_diverging_slot_is_reported_and_does_not_touch_the_others(spirals: SpiralsTask) -> None:
    configs = [
        _config(dropout=0.2),
        _config(learning_rate=1e6, schedule={"type": "exponential", "gamma": 1.0}),
        _config(learning_rate=0.02, weight_init="orthogonal"),
    ]
    seeds = [4, 5, 6]
    epochs, finals = _run_pack(spirals, configs, seeds)
    diverged = epochs[1]
    solo_diverged, _ = _solo(configs[1], spirals, 5)
    assert solo_diverged.status == "diverged"
    assert diverged[-1].diverged
    assert diverged[-1].finished
    assert diverged[-1].metrics is None
    _assert_curves_match(_result_of(diverged), solo_diverged)
    for i in (0, 2):
        solo, weights = _solo(configs[i], spirals, seeds[i])
        _assert_curves_match(_result_of(epochs[i]), solo)
        _assert_weights_match(finals[i], weights)
        assert all(torch.isfinite(v).all() for v in finals[i].values())


class _BatchNormTask:
    """A task whose model keeps buffers (running statistics): it cannot be packed."""

    name = "batch-norm"

    def load_data(self, seed: int) -> TaskData:
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed))
        y = torch.arange(16) % 2
        return TaskData(x_train=x, y_train=y, x_val=x, y_val=y, num_classes=2)

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


class _CustomModuleTask(_BatchNormTask):
    """A model that is not an ``nn.Sequential``."""

    name = "custom"

    def build_model(self, dropout: float, weight_init: str) -> nn.Module:
        return _Residual()


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + x[:, :2]  # type: ignore[no-any-return]


def test_pack_key_groups_trials_that_can_share_a_pack(spirals: SpiralsTask) -> None:
    base = pack_key(_config(), spirals)
    assert base is not None
    compatible = _config(
        learning_rate=0.3,
        dropout=0.4,
        weight_init="orthogonal",
        weight_decay=0.1,
        warmup_epochs=2,
        max_epochs=9,
        schedule=SCHEDULES[3],
    )
    assert pack_key(compatible, spirals) == base
    assert pack_key(_config(batch_size=64), spirals) != base
    assert pack_key(_config(optimizer="adam"), spirals) != base
    wider = SpiralsTask({"n_train": 200, "n_val": 100, "hidden": 48})
    assert pack_key(_config(), wider) != base
    assert pack_key(_config(), _BatchNormTask()) is None
    assert pack_key(_config(), _CustomModuleTask()) is None


def test_pack_key_leaves_the_global_rng_alone(spirals: SpiralsTask) -> None:
    state = torch.get_rng_state()
    pack_key(_config(dropout=0.123), SpiralsTask({"n_train": 50, "n_val": 20}))
    assert torch.equal(torch.get_rng_state(), state)


def test_add_rejects_a_trial_of_another_pack(spirals: SpiralsTask) -> None:
    pack = PackedRun(spirals, data_seed=DATA_SEED)
    pack.add("a", _config(), 1)
    with pytest.raises(ValueError, match="does not fit the pack"):
        pack.add("b", _config(batch_size=16), 2)
    with pytest.raises(ValueError, match="already in the pack"):
        pack.add("a", _config(), 3)
    pack.remove("a")
    pack.remove("a")  # no longer there: ignored
    pack.add("b", _config(batch_size=16), 2)  # an empty pack takes any packable trial
    assert pack.keys() == ["b"]
    with pytest.raises(ValueError, match="cannot be packed"):
        PackedRun(_BatchNormTask(), data_seed=0).add("c", _config(), 1)
    with pytest.raises(KeyError):
        pack.state_of("a")


def test_a_stop_request_interrupts_before_the_epoch(spirals: SpiralsTask) -> None:
    pack = PackedRun(spirals, data_seed=DATA_SEED)
    pack.add("a", _config(), 1)
    pack.run_epoch()
    before = pack.state_of("a")
    with pytest.raises(TrainingInterrupted) as caught:
        pack.run_epoch(stop_requested=lambda: True)
    assert caught.value.epochs_run == 1
    assert pack.epoch_of("a") == 1
    _assert_weights_match(pack.state_of("a"), before)


def test_a_small_cnn_packs_and_matches_its_solo_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    labels = rng.integers(0, 3, size=160)
    images = rng.normal(size=(160, 1, 8, 8)).astype(np.float32)
    images[np.arange(160), 0, labels * 2, :] += 2.0  # a stripe per class
    np.savez(
        path, x_train=images[:128], y_train=labels[:128], x_val=images[128:], y_val=labels[128:]
    )
    task = NpzClassifierTask({"path": str(path)})
    configs = [
        _config(optimizer="sgd", learning_rate=0.05, dropout=0.3, max_epochs=3),
        _config(optimizer="sgd", learning_rate=0.1, weight_init="kaiming_normal", max_epochs=3),
        _config(
            optimizer="sgd",
            learning_rate=0.02,
            weight_decay=1e-3,
            schedule=SCHEDULES[4],
            dropout=0.1,
            weight_init="xavier_uniform",
            max_epochs=3,
        ),
    ]
    assert pack_key(configs[0], task) is not None
    assert pack_key(configs[0], task) == pack_key(configs[2], task)
    seeds = [21, 22, 23]
    epochs, finals = _run_pack(task, configs, seeds)
    for i, (config, seed) in enumerate(zip(configs, seeds, strict=True)):
        solo, weights = _solo(config, task, seed)
        _assert_curves_match(_result_of(epochs[i]), solo)
        _assert_weights_match(finals[i], weights)


def test_every_exported_name_exists() -> None:
    from lrsearch.workers import packing

    assert set(packing.__all__) == {"PackedRun", "SlotEpoch", "pack_key", "train_pack"}
    assert all(hasattr(packing, name) for name in packing.__all__)


def test_the_benchmark_runs_and_its_packed_trials_match() -> None:
    path = Path(__file__).resolve().parents[2] / "bench" / "packing.py"
    spec = importlib.util.spec_from_file_location("bench_packing", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run_packing_bench(
        "cpu", [2], tasks=("digits",), epochs=1, baselines=("sequential",), log=False
    )
    (row,) = result["rows"]
    assert row["task"] == "digits"
    assert row["k"] == 2
    assert row["max_abs_diff_val_accuracy"] <= 1e-3
    assert row["packed_trials_per_hour"] > 0
    assert row["sequential_trials_per_cpu_hour"] > 0
    assert "processes_s" not in row
