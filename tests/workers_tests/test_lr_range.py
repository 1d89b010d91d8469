"""The LR range test on real tasks: its bounds must separate rates that train from ones that fail.

Each test trains for real (a few epochs on CPU) at a rate inside the chosen
range and at one far above it, so a rule that picked bounds in the wrong place
fails here, whatever the numbers it prints.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import DefinitionError, TrialConfig, parse_definition
from lrsearch.workers.loop import WorkerOptions, run_worker
from lrsearch.workers.lr_range import (
    DEFAULT_BATCHES,
    FLAT_FALL,
    RangeTestResult,
    choose_bounds,
    lr_range_test,
)
from lrsearch.workers.tasks import get_task
from lrsearch.workers.training import train_trial

EPOCHS = 4


def _train(task_name: str, lr: float) -> tuple[str, list[dict[str, float]]]:
    config = TrialConfig.model_validate(
        {
            "schedule": {"type": "step", "step_size": 1, "gamma": 1.0},
            "learning_rate": lr,
            "batch_size": 64,
            "dropout": 0.0,
            "max_epochs": EPOCHS,
        }
    )
    result = train_trial(config, get_task(task_name), objective="val_accuracy", seed=1)
    return result.status, result.metrics


@pytest.mark.parametrize(("task_name", "n_classes"), [("synthetic", 4), ("digits-mlp", 10)])
def test_chosen_range_trains_and_far_above_it_does_not(task_name: str, n_classes: int) -> None:
    found = lr_range_test(get_task(task_name), batches=150)
    assert found.low < found.steepest <= found.high
    assert found.high / found.low >= 10 - 1e-9

    inside = math.sqrt(found.low * found.high)
    status, metrics = _train(task_name, inside)
    assert status == "complete"
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    inside_accuracy = metrics[-1]["val_accuracy"]
    assert inside_accuracy > 2.0 / n_classes  # well above chance

    far_above = min(found.high * 100, 100.0)
    status, metrics = _train(task_name, far_above)
    # Diverged (NaN loss), or trained to something much worse than inside the range.
    assert status == "diverged" or metrics[-1]["val_accuracy"] < inside_accuracy - 0.2


def test_stops_early_when_the_loss_diverges() -> None:
    found = lr_range_test(get_task("synthetic"), batches=150, end_lr=100.0)
    assert found.diverged
    assert len(found.lrs) < 150
    assert found.high < found.lrs[-1]


def test_the_curve_is_bounded_by_the_batches_asked_for() -> None:
    found = lr_range_test(get_task("synthetic"), batches=20, start_lr=1e-5, end_lr=1e-3)
    assert len(found.lrs) == len(found.losses) == 20
    assert found.lrs[0] == pytest.approx(1e-5)
    assert found.lrs[-1] == pytest.approx(1e-3)
    assert not found.diverged


def test_a_curve_that_never_falls_is_flat_and_one_that_trains_is_not() -> None:
    # Rates far too small to move the weights within 20 batches: nothing trains.
    tiny = lr_range_test(get_task("synthetic"), batches=20, start_lr=1e-9, end_lr=1e-8)
    assert tiny.flat
    assert tiny.to_json()["flat"] is True
    trains = lr_range_test(get_task("synthetic"))
    assert not trains.flat
    # The rule itself: flat means never FLAT_FALL below the first smoothed loss.
    start = 2.0
    barely = RangeTestResult(
        [1e-3, 1e-2, 1e-1], [start, start * (1 - FLAT_FALL / 2), start], 0, 0, 0, False
    )
    fell = RangeTestResult(
        [1e-3, 1e-2, 1e-1], [start, start * (1 - 2 * FLAT_FALL), start], 0, 0, 0, False
    )
    assert barely.flat
    assert not fell.flat


def test_choose_bounds_picks_the_steepest_fall_and_the_minimum() -> None:
    lrs = [10 ** (-6 + k / 10) for k in range(61)]  # 1e-6 .. 1
    # Flat, then falling fastest around 1e-3, lowest at 1e-2, then rising.
    losses = [2.0 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 4)) for lr in lrs]
    losses = [
        v if lr <= 1e-2 else v + (math.log10(lr) + 2) * 3 for v, lr in zip(losses, lrs, strict=True)
    ]
    low, high, steepest = choose_bounds(lrs, losses)
    assert high == pytest.approx(1e-2, rel=0.3)
    assert steepest == pytest.approx(1e-3, rel=0.3)
    assert low < steepest
    assert low >= 1e-4


def test_choose_bounds_rejects_a_curve_too_short() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        choose_bounds([1e-3, 1e-2], [1.0, 0.5])


# -- learning_rate: auto, end to end with a real worker --------------------------------


def _auto_study(url: str, name: str) -> storage.StudyRecord:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "task_options": {"n_train": 512, "n_val": 128},
        "budget": {"n_trials": 4, "max_epochs": 2},
        "sampler": {"type": "random", "seed": 3},
        "pruner": {"type": "none"},
        "search_space": {"learning_rate": "auto", "batch_size": [32, 64]},
    }
    backend = storage.open_backend(url)
    try:
        return storage.create_study(backend, parse_definition(raw))
    finally:
        backend.dispose()


def test_auto_study_runs_the_range_test_once_and_samples_inside_its_bounds(
    storage_url: str, study_name: str
) -> None:
    record = _auto_study(storage_url, study_name)
    assert record.definition.learning_rate_auto
    options = WorkerOptions(
        storage_url=storage_url,
        study=study_name,
        device="cpu",
        idle_exit=2.0,
        poll_interval=0.1,
        install_signal_handlers=False,
    )
    stats = run_worker(options)
    assert stats.trials == 4

    backend = storage.open_backend(storage_url)
    try:
        stored = storage.stored_lr_range(backend, record.study_id)
        assert stored is not None
        low, high = storage.lr_range_bounds(stored)
        assert len(stored["lrs"]) == len(stored["losses"]) <= DEFAULT_BATCHES
        assert stored["settings"]["batch_size"] == 64  # the middle of [32, 64]
        # The stored definition still says auto: the bounds live beside it.
        again = storage.get_study(backend, study_name)
        assert again.definition.learning_rate_auto
        study = optuna.load_study(study_name=study_name, storage=backend.optuna_storage)
        trials = study.get_trials()
        assert len(trials) == 4
        for t in trials:
            assert t.state == TrialState.COMPLETE
            assert low <= t.params["learning_rate"] <= high
            dist = t.distributions["learning_rate"]
            assert isinstance(dist, optuna.distributions.FloatDistribution)
            assert (dist.low, dist.high, dist.log) == (low, high, True)
        # What optuna-dashboard shows: the study user attr.
        assert study.user_attrs["lr_range"]["high"] == high
    finally:
        backend.dispose()


def test_the_first_stored_range_wins(storage_url: str, study_name: str) -> None:
    record = _auto_study(storage_url, study_name)
    backend = storage.open_backend(storage_url)
    try:
        first = storage.store_lr_range(backend, record.study_id, {"low": 1e-3, "high": 0.1})
        second = storage.store_lr_range(backend, record.study_id, {"low": 1e-2, "high": 1.0})
        assert first == second == {"low": 1e-3, "high": 0.1}
        assert storage.stored_lr_range(backend, record.study_id) == first
    finally:
        backend.dispose()


def test_bounds_no_trial_could_sample_in_are_never_stored(
    storage_url: str, study_name: str
) -> None:
    record = _auto_study(storage_url, study_name)
    backend = storage.open_backend(storage_url)
    try:
        with pytest.raises(ValueError, match="0 < low < high"):
            storage.store_lr_range(backend, record.study_id, {"low": 0.1, "high": 0.01})
        assert storage.stored_lr_range(backend, record.study_id) is None
    finally:
        backend.dispose()


def test_auto_is_refused_for_an_external_study_with_the_reason() -> None:
    raw = {
        "name": "ext",
        "task": "external",
        "objective": {"metric": "loss", "direction": "minimize"},
        "search_space": {"learning_rate": "auto"},
    }
    with pytest.raises(DefinitionError) as caught:
        parse_definition(raw)
    [problem] = caught.value.problems
    assert problem.loc == ("search_space", "learning_rate")
    assert "auto needs a built-in task" in problem.msg


def test_auto_round_trips_through_the_stored_json() -> None:
    raw = {"name": "a", "task": "synthetic", "search_space": {"learning_rate": "auto"}}
    definition = parse_definition(raw)
    dumped = definition.model_dump(mode="json")
    assert dumped["search_space"]["learning_rate"] == "auto"
    assert parse_definition(dumped).learning_rate_auto
    fixed = definition.with_learning_rate(0.01, 0.5)
    assert not fixed.learning_rate_auto
    assert fixed.model_dump(mode="json")["search_space"]["learning_rate"] == {
        "low": 0.01,
        "high": 0.5,
        "log": True,
    }


def test_a_misspelt_auto_is_a_clear_problem() -> None:
    raw = {"name": "a", "task": "synthetic", "search_space": {"learning_rate": "Auto"}}
    with pytest.raises(DefinitionError) as caught:
        parse_definition(raw)
    assert "or 'auto'" in str(caught.value)
