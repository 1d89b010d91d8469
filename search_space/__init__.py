"""The search space of lrsearch: study definitions, schedule types, trial configs.

Pure: imports only the standard library, pydantic and optuna. No torch, no SQL,
no files, no environment variables.
"""

from lrsearch.search_space._balanced import BalancedScheduleSampler, unwrap_sampler
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
    BUILTIN_METRICS,
    EXTERNAL_TASK,
    Budget,
    FloatRange,
    IntRange,
    Objective,
    ParamRange,
    PrunerSpec,
    SearchSpace,
    StudyDefinition,
    parse_definition,
)
from lrsearch.search_space._errors import ConfigError, DefinitionError, Problem, SearchSpaceError
from lrsearch.search_space._partial import validate_partial_params
from lrsearch.search_space._pruning import ScheduleAwareHyperbandPruner, ScheduleAwarePruner
from lrsearch.search_space._pytorch_code import pytorch_code, trial_pytorch_code
from lrsearch.search_space._sampler_spec import SamplerSpec
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
from lrsearch.search_space._settings import ScheduleSettings, schedule_settings, trial_settings

__all__ = [
    "BUILTIN_METRICS",
    "CYCLIC_MODES",
    "EXTERNAL_TASK",
    "OPTIMIZERS",
    "SCHEDULE_PARAMS",
    "SCHEDULE_TYPES",
    "WEIGHT_INITS",
    "BalancedScheduleSampler",
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
    "ScheduleAwareHyperbandPruner",
    "ScheduleAwarePruner",
    "ScheduleSettings",
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
    "pytorch_code",
    "sample_config",
    "schedule_param_specs",
    "schedule_settings",
    "trial_pytorch_code",
    "trial_settings",
    "unwrap_sampler",
    "validate_fixed_params",
    "validate_partial_params",
]
