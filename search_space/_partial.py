"""Partial fixed configurations: some parameters given, Optuna samples the rest.

Optuna's ``enqueue_trial`` takes any subset of parameters: the trial's
``suggest_*`` calls return the fixed ones and sample the others. What we must
still guarantee is that every given value is one the study could have sampled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lrsearch.search_space._config import (
    dimension_specs,
    schedule_param_specs,
    validate_fixed_params,
)
from lrsearch.search_space._definition import StudyDefinition
from lrsearch.search_space._errors import ConfigError, Problem


def validate_partial_params(
    definition: StudyDefinition, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Check the given subset of a configuration against a study's space.

    Same rules as :func:`validate_fixed_params` for each value given; a missing
    parameter is no problem (it will be sampled). A schedule's own parameter
    (``cosine.t_max``) needs ``schedule`` as well: without it Optuna might
    sample another schedule type and the value would be silently dropped.

    Returns:
        The given parameters, integers as integers (``5.0`` -> ``5``).

    Raises:
        ConfigError: Listing every unknown or out-of-range parameter.
    """
    try:
        config = validate_fixed_params(definition, params)
    except ConfigError as exc:
        problems = [p for p in exc.problems if p.msg != "missing"]
    else:
        return {k: v for k, v in config.to_params().items() if k in params}
    schedule = params.get("schedule")
    if schedule is None:
        problems = [
            Problem(p.loc, "a schedule's own parameter needs `schedule` set too")
            if "." in str(p.loc[0]) and p.loc[0] in params
            else p
            for p in problems
        ]
    if problems:
        raise ConfigError(problems)
    specs = dict(dimension_specs(definition))
    if schedule in definition.search_space.schedules:
        specs.update(
            (f"{schedule}.{k}", v) for k, v in schedule_param_specs(definition, schedule).items()
        )
    return {
        k: int(v) if k in specs and specs[k].kind == "int" and isinstance(v, float) else v
        for k, v in params.items()
    }
