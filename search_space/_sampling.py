"""Optuna side of the search space: define-by-run sampling, samplers and pruners."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from lrsearch.search_space._config import TrialConfig, config_from_params, schedule_param_specs
from lrsearch.search_space._definition import StudyDefinition
from lrsearch.search_space._schedules import ParamSpec


def _suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    if spec.kind == "categorical":
        return trial.suggest_categorical(name, list(spec.choices))
    if spec.kind == "int":
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, log=spec.log)


def sample_config(trial: optuna.Trial, definition: StudyDefinition) -> TrialConfig:
    """Suggest every dimension of ``definition`` on ``trial`` and return the typed result.

    Define-by-run: only the chosen schedule's own parameters are suggested, as
    ``<schedule>.<param>``; the other schedules' parameters never appear.
    """
    space = definition.search_space
    params: dict[str, Any] = {
        "schedule": trial.suggest_categorical("schedule", list(space.schedules)),
        "learning_rate": trial.suggest_float(
            "learning_rate",
            space.learning_rate.low,
            space.learning_rate.high,
            log=space.learning_rate.log,
        ),
        "batch_size": trial.suggest_categorical("batch_size", list(space.batch_size)),
        "dropout": trial.suggest_float("dropout", space.dropout.low, space.dropout.high),
        "weight_init": trial.suggest_categorical("weight_init", list(space.weight_init)),
    }
    low, high = definition.warmup_bounds()
    if low != high:
        params["warmup_epochs"] = trial.suggest_int("warmup_epochs", low, high)
    if space.optimizer is not None:
        params["optimizer"] = trial.suggest_categorical("optimizer", list(space.optimizer))
    if space.weight_decay is not None:
        wd = space.weight_decay
        params["weight_decay"] = trial.suggest_float("weight_decay", wd.low, wd.high, log=wd.log)
    schedule = params["schedule"]
    for name, spec in schedule_param_specs(definition, schedule).items():
        params[f"{schedule}.{name}"] = _suggest(trial, f"{schedule}.{name}", spec)
    return config_from_params(definition, params)


def make_sampler(definition: StudyDefinition) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a definition asks for."""
    seed = definition.sampler.seed
    kind = definition.sampler.type
    # Several samplers are flagged experimental by Optuna; that is a property of
    # the library, not a problem of the user's study, so it is not surfaced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if kind == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def make_pruner(definition: StudyDefinition) -> optuna.pruners.BasePruner:
    """The Optuna pruner a definition asks for; epochs are the pruner's resource."""
    p = definition.pruner
    max_epochs = definition.budget.max_epochs
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_epochs, max_resource=max_epochs, reduction_factor=p.reduction_factor
        )
    if p.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=p.min_epochs - 1)
    if p.type == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=5, n_warmup_steps=p.min_epochs - 1
        )
    if p.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_epochs, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()
