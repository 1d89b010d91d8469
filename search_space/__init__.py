"""The search space of lrsearch: study definitions, schedule types, trial configs.

Pure: imports only the standard library, pydantic and optuna. No torch, no SQL,
no files, no environment variables.
"""

from lrsearch.search_space._config import (
    CosineSchedule,
    CyclicSchedule,
    ExponentialSchedule,
    PlateauSchedule,
    Schedule,
    StepSchedule,
    TrialConfig,
    WarmupSchedule,
    config_from_params,
    dimension_specs,
    schedule_param_specs,
    validate_fixed_params,
)
from lrsearch.search_space._definition import (
    Budget,
    FloatRange,
    IntRange,
    Objective,
    ParamRange,
    PrunerSpec,
    SamplerSpec,
    SearchSpace,
    StudyDefinition,
    parse_definition,
)
from lrsearch.search_space._errors import ConfigError, DefinitionError, Problem, SearchSpaceError
from lrsearch.search_space._sampling import make_pruner, make_sampler, sample_config
from lrsearch.search_space._schedules import (
    CYCLIC_MODES,
    OPTIMIZERS,
    SCHEDULE_PARAMS,
    SCHEDULE_TYPES,
    WEIGHT_INITS,
    ParamSpec,
    ScheduleType,
)

__all__ = [
    "CYCLIC_MODES",
    "OPTIMIZERS",
    "SCHEDULE_PARAMS",
    "SCHEDULE_TYPES",
    "WEIGHT_INITS",
    "Budget",
    "ConfigError",
    "CosineSchedule",
    "CyclicSchedule",
    "DefinitionError",
    "ExponentialSchedule",
    "FloatRange",
    "IntRange",
    "Objective",
    "ParamRange",
    "ParamSpec",
    "PlateauSchedule",
    "Problem",
    "PrunerSpec",
    "SamplerSpec",
    "Schedule",
    "ScheduleType",
    "SearchSpace",
    "SearchSpaceError",
    "StepSchedule",
    "StudyDefinition",
    "TrialConfig",
    "WarmupSchedule",
    "config_from_params",
    "dimension_specs",
    "make_pruner",
    "make_sampler",
    "parse_definition",
    "sample_config",
    "schedule_param_specs",
    "validate_fixed_params",
]
