"""Defaults chosen by the search benchmark: pruners wait, warm-up trials do not ramp twice."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from lrsearch.search_space import (
    ConfigError,
    StudyDefinition,
    TrialConfig,
    make_pruner,
    parse_definition,
    sample_config,
    validate_fixed_params,
)
from lrsearch.search_space._sampling import prune_warmup_steps


def _definition(minimal_raw: dict[str, Any], max_epochs: int, **pruner: Any) -> StudyDefinition:
    return parse_definition(
        {
            **minimal_raw,
            "budget": {"n_trials": 10, "max_epochs": max_epochs},
            # The plain pruner: this is about its own warm-up, not the schedule rule.
            "pruner": {**pruner, "schedule_aware": False},
        }
    )


def _first_pruned_epoch(definition: StudyDefinition) -> int | None:
    """The first epoch at which a clearly bad trial is pruned, behind five good ones.

    A real Optuna study: the good trials report 0.9 at every epoch and the bad
    one 0.1, so a pruner that may judge at an epoch prunes there.
    """
    max_epochs = definition.budget.max_epochs
    study = optuna.create_study(direction="maximize", pruner=make_pruner(definition))
    for _ in range(5):
        good = study.ask()
        for epoch in range(max_epochs):
            good.report(0.9, epoch)
        study.tell(good, 0.9)
    bad = study.ask()
    for epoch in range(max_epochs):
        bad.report(0.1, epoch)
        if bad.should_prune():
            return epoch
    return None


@pytest.mark.parametrize("kind", ["median", "percentile"])
def test_median_and_percentile_wait_a_quarter_of_the_budget(
    minimal_raw: dict[str, Any], kind: str
) -> None:
    # Before that change, n_warmup_steps = min_epochs - 1 = 0 pruned after epoch 1.
    definition = _definition(minimal_raw, 15, type=kind)
    assert _first_pruned_epoch(definition) == 3  # judged after 4 of 15 epochs


@pytest.mark.parametrize(
    ("max_epochs", "min_epochs", "first"),
    [(20, 1, 4), (15, 6, 5), (1, 1, 0), (3, 1, 0), (8, 8, 7)],
)
def test_prune_warmup_is_the_larger_of_min_epochs_and_the_fraction(
    minimal_raw: dict[str, Any], max_epochs: int, min_epochs: int, first: int
) -> None:
    definition = _definition(minimal_raw, max_epochs, type="median", min_epochs=min_epochs)
    assert prune_warmup_steps(definition) == first
    assert _first_pruned_epoch(definition) == first


def _sampled(definition: StudyDefinition, n: int) -> list[tuple[dict[str, Any], TrialConfig]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        cfg = sample_config(trial, definition)
        out.append((dict(trial.params), cfg))
    return out


def test_warmup_schedule_never_samples_a_warmup_prefix(minimal_raw: dict[str, Any]) -> None:
    definition = parse_definition(minimal_raw)  # warm-up prefix range 0..5 by default
    seen = {"warmup": 0, "other": 0}
    for params, cfg in _sampled(definition, 60):
        if params["schedule"] == "warmup":
            seen["warmup"] += 1
            assert "warmup_epochs" not in params
            assert cfg.warmup_epochs == 0
        else:
            seen["other"] += 1
            assert "warmup_epochs" in params
            assert cfg.warmup_epochs == params["warmup_epochs"]
    assert seen["warmup"] > 0
    assert seen["other"] > 0


def test_fixed_warmup_prefix_does_not_apply_to_the_warmup_schedule(
    minimal_raw: dict[str, Any],
) -> None:
    definition = parse_definition({**minimal_raw, "search_space": {"warmup_epochs": 3}})
    configs = [cfg for _, cfg in _sampled(definition, 40)]
    assert {c.warmup_epochs for c in configs if c.schedule_type == "warmup"} == {0}
    assert {c.warmup_epochs for c in configs if c.schedule_type != "warmup"} == {3}


def test_fixed_warmup_trial_needs_no_prefix_and_ignores_one(minimal_raw: dict[str, Any]) -> None:
    definition = parse_definition(minimal_raw)
    params: dict[str, Any] = {
        "schedule": "warmup",
        "learning_rate": 0.01,
        "batch_size": 64,
        "dropout": 0.1,
        "weight_init": "default",
        "warmup.start_factor": 0.1,
        "warmup.ramp_epochs": 3,
    }
    assert validate_fixed_params(definition, params).warmup_epochs == 0
    assert validate_fixed_params(definition, {**params, "warmup_epochs": 2}).warmup_epochs == 0
    with pytest.raises(ConfigError, match="warmup_epochs"):
        validate_fixed_params(definition, {**params, "warmup_epochs": 99})
