"""Optuna side of the search space: define-by-run sampling, samplers and pruners."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import optuna

from lrsearch.search_space._balanced import BalancedScheduleSampler, protect_priority_trials
from lrsearch.search_space._config import TrialConfig, config_from_params, schedule_param_specs
from lrsearch.search_space._definition import StudyDefinition
from lrsearch.search_space._pruning import ScheduleAwareHyperbandPruner, ScheduleAwarePruner
from lrsearch.search_space._schedules import ParamSpec

# Median and percentile pruners judge a trial only after this fraction of the
# epoch budget (and never before ``pruner.min_epochs``). Measured on digits-mlp,
# 15 epochs: judged after epoch 1 they killed 55% of the cyclic and
# 50% of the warm-up trials that ended in the top half; judged after epoch 4, at
# most 21% of any schedule type. A quarter of the budget is epoch 4 of 15.
PRUNE_WARMUP_FRACTION = 0.25


def prune_warmup_steps(definition: StudyDefinition) -> int:
    """Epoch index (0-based) before which median/percentile pruners never prune."""
    budget = definition.budget.max_epochs
    first_judged = max(definition.pruner.min_epochs, math.ceil(budget * PRUNE_WARMUP_FRACTION))
    return min(first_judged, budget) - 1


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
    # The warm-up schedule is its own ramp: a prefix would ramp twice, so
    # warm-up trials never sample one (config_from_params sets it to 0).
    if low != high and params["schedule"] != "warmup":
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


def make_sampler(
    definition: StudyDefinition,
    *,
    tpe: Callable[..., optuna.samplers.TPESampler] = optuna.samplers.TPESampler,
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a definition asks for, behind the balancing wrapper if on.

    With ``sampler.balance_schedules`` (the default for TPE) the schedule type
    is chosen by :class:`BalancedScheduleSampler`, every other parameter by
    the sampler named in ``sampler.type``. ``tpe`` builds the TPE sampler
    (called with ``seed=``): the storage passes a TPE subclass that proposes
    the same but keeps the finished trials' parameter arrays between trials.

    No ``constraints_func``: Optuna 5 deprecates it (a FutureWarning) in
    favour of ``Trial.set_constraint``, which the worker calls on trials that
    ran out of GPU memory (TPE only; see ``workers._loop_support``).
    """
    spec = definition.sampler
    base = _base_sampler(spec.type, spec.seed, tpe)
    if not balances(definition):
        return base
    return BalancedScheduleSampler(
        base,
        min_completed=spec.min_per_schedule,
        every=spec.balance_every,
        seed=spec.seed,
        start=math.ceil(spec.balance_start * definition.budget.n_trials),
    )


def _base_sampler(
    kind: str, seed: int | None, tpe: Callable[..., optuna.samplers.TPESampler]
) -> optuna.samplers.BaseSampler:
    # Several samplers are flagged experimental by Optuna; that is a property of
    # the library, not a problem of the user's study, so it is not surfaced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "tpe":
            return tpe(seed=seed)
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if kind == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def make_pruner(definition: StudyDefinition) -> optuna.pruners.BasePruner:
    """The Optuna pruner a definition asks for; epochs are the pruner's resource.

    With schedule balancing and ``sampler.protect_priority`` (the defaults for
    TPE), it never prunes the trials that keep a schedule type alive.
    """
    pruner = _configured_pruner(definition)
    spec = definition.sampler
    if balances(definition) and spec.protect_priority and spec.min_per_schedule > 0:
        return protect_priority_trials(pruner)
    return pruner


def balances(definition: StudyDefinition) -> bool:
    """Whether ``make_sampler`` puts schedule balancing in front of the sampler."""
    return definition.sampler.balanced and len(definition.search_space.schedules) > 1


def _configured_pruner(definition: StudyDefinition) -> optuna.pruners.BasePruner:
    p = definition.pruner
    max_epochs = definition.budget.max_epochs
    # Warm-up of trials that do not carry it as a parameter (a fixed warm-up).
    fixed_warmup, _ = definition.warmup_bounds()
    if p.type == "hyperband":
        if p.schedule_aware:
            return ScheduleAwareHyperbandPruner(
                min_resource=p.min_epochs,
                max_resource=max_epochs,
                reduction_factor=p.reduction_factor,
                default_warmup_epochs=fixed_warmup,
            )
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_epochs, max_resource=max_epochs, reduction_factor=p.reduction_factor
        )
    inner = _plain_pruner(definition)
    if p.schedule_aware and not isinstance(inner, optuna.pruners.NopPruner):
        return ScheduleAwarePruner(inner, default_warmup_epochs=fixed_warmup)
    return inner


def _plain_pruner(definition: StudyDefinition) -> optuna.pruners.BasePruner:
    p = definition.pruner
    if p.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=prune_warmup_steps(definition)
        )
    if p.type == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=5, n_warmup_steps=prune_warmup_steps(definition)
        )
    if p.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_epochs, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()
