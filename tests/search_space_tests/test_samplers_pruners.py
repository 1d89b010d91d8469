"""make_sampler / make_pruner: the right Optuna objects, no warnings, and they really run.

pytest runs with filterwarnings=error, so any warning (ExperimentalWarning
included) that escapes make_sampler or a sampler's work fails the test.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
import pytest

from lrsearch.search_space import (
    SCHEDULE_TYPES,
    BalancedScheduleSampler,
    StudyDefinition,
    TrialConfig,
    make_pruner,
    make_sampler,
    parse_definition,
    sample_config,
    unwrap_sampler,
    validate_fixed_params,
)

BASE: dict[str, Any] = {"name": "sampler-study", "task": "digits-mlp"}

SAMPLER_CLASSES = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
PRUNER_CLASSES = {
    "hyperband": optuna.pruners.HyperbandPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}
# GP and TPE start with 10 random trials; go past them so that their models run.
TRIALS = {"tpe": 14, "random": 6, "cmaes": 6, "gp": 12, "qmc": 8}


def _definition(**sections: Any) -> StudyDefinition:
    return parse_definition({**BASE, **sections})


def _rich_definition(sampler: str, seed: int | None = 0) -> StudyDefinition:
    """Every optional dimension switched on, so every kind of suggest is exercised."""
    return _definition(
        objective={"metric": "val_loss"},
        sampler={"type": sampler, "seed": seed},
        budget={"n_trials": 20, "max_epochs": 12},
        search_space={
            "optimizer": ["sgd", "adam", "adamw"],
            "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
            "schedule_params": {"cyclic": {"mode": {"choices": ["triangular", "exp_range"]}}},
        },
    )


@pytest.fixture
def no_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning, even ones an outer filter would ignore; assert none."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    assert [str(w.message) for w in caught] == []


# --------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("kind", list(SAMPLER_CLASSES))
@pytest.mark.parametrize("seed", [None, 0, 12345])
def test_make_sampler_returns_the_requested_class(
    kind: str, seed: int | None, no_warnings: list[warnings.WarningMessage]
) -> None:
    sampler = make_sampler(_definition(sampler={"type": kind, "seed": seed}))
    # TPE sits behind schedule balancing by default (lrsearch.search_space._balanced).
    assert type(unwrap_sampler(sampler)) is SAMPLER_CLASSES[kind]
    assert isinstance(sampler, BalancedScheduleSampler) == (kind == "tpe")


def test_default_sampler_is_tpe(default_definition: StudyDefinition) -> None:
    sampler = make_sampler(default_definition)
    assert isinstance(sampler, BalancedScheduleSampler)
    assert type(sampler.base) is optuna.samplers.TPESampler


def test_make_sampler_leaves_the_warning_filters_alone() -> None:
    before = list(warnings.filters)
    for kind in SAMPLER_CLASSES:
        make_sampler(_definition(sampler={"type": kind}))
    assert warnings.filters == before


@pytest.mark.parametrize("kind", list(SAMPLER_CLASSES))
def test_each_sampler_samples_the_dynamic_space(
    kind: str, no_warnings: list[warnings.WarningMessage]
) -> None:
    definition = _rich_definition(kind)
    study = optuna.create_study(sampler=make_sampler(definition), direction=definition.direction)
    seen = set()
    for i in range(TRIALS[kind]):
        trial = study.ask()
        cfg = sample_config(trial, definition)
        assert isinstance(cfg, TrialConfig)
        assert cfg.schedule_type in SCHEDULE_TYPES
        assert cfg.optimizer in {"sgd", "adam", "adamw"}
        assert 1e-6 <= cfg.weight_decay <= 1e-2
        assert validate_fixed_params(definition, trial.params) == cfg
        seen.add(cfg.schedule_type)
        study.tell(trial, cfg.learning_rate * (1 + cfg.dropout) + 0.001 * i)
    assert len(study.trials) == TRIALS[kind]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len(seen) > 1, "a dynamic space: several schedule types over these trials"


@pytest.mark.parametrize("kind", ["tpe", "random", "qmc", "gp"])
def test_seeded_sampler_is_reproducible(kind: str) -> None:
    definition = _definition(sampler={"type": kind, "seed": 7})

    def first_configs() -> list[TrialConfig]:
        study = optuna.create_study(sampler=make_sampler(definition))
        configs = []
        for i in range(3):
            trial = study.ask()
            configs.append(sample_config(trial, definition))
            study.tell(trial, float(i))
        return configs

    assert first_configs() == first_configs()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _fallback_warnings(kind: str) -> list[str]:
    """WARNING logs about independent sampling over 12 trials on the default (dynamic) space."""
    definition = _definition(sampler={"type": kind, "seed": 3})
    study = optuna.create_study(sampler=make_sampler(definition))
    records = _Records()
    logger = logging.getLogger("optuna")
    logger.addHandler(records)
    try:
        for i in range(12):
            trial = study.ask()
            sample_config(trial, definition)
            study.tell(trial, float(i % 5))
    finally:
        logger.removeHandler(records)
    return [m for m in records.messages if "independent" in m]


@pytest.mark.parametrize("kind", ["qmc", "tpe", "random"])
def test_dynamic_space_does_not_flood_the_log_with_fallback_warnings(kind: str) -> None:
    assert _fallback_warnings(kind) == []


def test_gp_does_not_flood_the_log_with_fallback_warnings() -> None:
    """GP, past its start-up trials, does not log a WARNING per schedule-specific param
    ('sampled independently ... dynamic search space is not supported by GPSampler')."""
    assert _fallback_warnings("gp") == []


# --------------------------------------------------------------------------- pruners


@pytest.mark.parametrize("kind", list(PRUNER_CLASSES))
def test_make_pruner_returns_the_requested_class(
    kind: str, no_warnings: list[warnings.WarningMessage]
) -> None:
    # schedule_aware off: the plain Optuna pruner (the wrapped ones: test_schedule_pruning.py);
    # balancing's protection of priority trials off too (test_balanced.py).
    pruner = make_pruner(
        _definition(
            pruner={"type": kind, "min_epochs": 2, "schedule_aware": False},
            sampler={"balance_schedules": False},
        )
    )
    assert type(pruner) is PRUNER_CLASSES[kind]


def test_default_pruner_is_hyperband(default_definition: StudyDefinition) -> None:
    # Schedule-aware by default: a HyperbandPruner subclass, so Optuna still finds its brackets.
    assert isinstance(make_pruner(default_definition), optuna.pruners.HyperbandPruner)


def _run_with_pruner(definition: StudyDefinition, n_trials: int) -> optuna.Study:
    """Trials report val_accuracy per epoch; later trials are worse, so some get pruned."""
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=make_pruner(definition),
        direction=definition.direction,
    )
    for i in range(n_trials):
        trial = study.ask()
        sample_config(trial, definition)
        value = 0.0
        pruned = False
        for epoch in range(definition.budget.max_epochs):
            value = (epoch + 1) / definition.budget.max_epochs * (1.0 - 0.05 * i)
            trial.report(value, epoch)
            if trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


@pytest.mark.parametrize("kind", list(PRUNER_CLASSES))
def test_each_pruner_runs_a_study(kind: str, no_warnings: list[warnings.WarningMessage]) -> None:
    definition = _definition(pruner={"type": kind, "min_epochs": 1}, budget={"max_epochs": 9})
    study = _run_with_pruner(definition, n_trials=12)
    states = [t.state for t in study.trials]
    assert len(states) == 12
    assert states[0] == optuna.trial.TrialState.COMPLETE
    pruned = states.count(optuna.trial.TrialState.PRUNED)
    if kind == "none":
        assert pruned == 0
    else:
        assert pruned > 0, f"{kind}: steadily worse trials should get pruned"


@pytest.mark.parametrize("kind", ["median", "percentile"])
@pytest.mark.parametrize("min_epochs", [1, 3])
def test_min_epochs_is_trained_before_any_pruning(kind: str, min_epochs: int) -> None:
    definition = _definition(pruner={"type": kind, "min_epochs": min_epochs})
    study = _run_with_pruner(definition, n_trials=12)
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            # Epochs 0..min_epochs-1 are always reported before a prune.
            assert max(t.intermediate_values) >= min_epochs - 1
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)


def test_min_epochs_equal_to_max_epochs_is_usable() -> None:
    for kind in PRUNER_CLASSES:
        definition = _definition(
            pruner={"type": kind, "min_epochs": 4},
            budget={"max_epochs": 4},
            search_space={"warmup_epochs": 0},
        )
        study = _run_with_pruner(definition, n_trials=3)
        assert len(study.trials) == 3
