"""The study definition: what a user submits to start a search.

Structure and per-field rules are pydantic's job; the rules that relate fields
to one another run in :func:`parse_definition` afterwards so that every problem
comes back with the exact path of the field it is about.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from lrsearch.search_space._confirm import Confirm, default_confirm
from lrsearch.search_space._errors import DefinitionError, Loc, Problem
from lrsearch.search_space._sampler_spec import SEED_MAX, SamplerSpec, resolve_balance
from lrsearch.search_space._schedules import (
    MAX_EPOCHS,
    SCHEDULE_PARAMS,
    SCHEDULE_TYPES,
    WEIGHT_INITS,
    OptimizerName,
    ScheduleType,
    WeightInit,
)
from lrsearch.search_space._task_options import TaskOptions
from lrsearch.search_space._warm_start import WarmStart

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Metric = Literal["val_accuracy", "val_loss"]
BUILTIN_METRICS: tuple[str, ...] = ("val_accuracy", "val_loss")
EXTERNAL_TASK = "external"
"""The task of a study whose trials the user's own code runs through the client."""
Direction = Literal["maximize", "minimize"]
PrunerType = Literal["hyperband", "median", "percentile", "successive_halving", "none"]

_DEFAULT_DIRECTION: dict[str, Direction] = {"val_accuracy": "maximize", "val_loss": "minimize"}

# Bounds on numbers, so that whatever validates here fits the storage's columns
# (signed 32-bit INTEGER) and makes sense to train; every number is also finite.
INT32_MAX = 2**31 - 1
MAX_BATCH_SIZE = 1 << 20
MAX_LEARNING_RATE = 100.0
MAX_WEIGHT_DECAY = 10.0


class _Model(BaseModel):
    # strict: a definition is JSON/YAML, so "5" or true for an integer is a mistake to report.
    # allow_inf_nan=False: NaN and inf are rejected in every float field, nested ones too.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _no_duplicates(values: list[Any] | None) -> list[Any] | None:
    if values is None:
        return None
    seen: set[Any] = set()
    dupes = {str(v) for v in values if v in seen or seen.add(v)}  # type: ignore[func-returns-value]
    if dupes:
        raise ValueError(f"duplicate entries: {sorted(dupes)}")
    return values


class FloatRange(_Model):
    """A float dimension: ``low < high``; ``log`` samples on a log scale."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        problems = []
        if self.low >= self.high:
            problems.append(f"low ({self.low}) must be less than high ({self.high})")
        if self.log and self.low <= 0:
            problems.append(f"a log range needs low > 0, got {self.low}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# ``learning_rate: auto`` (contract): the bounds come from the LR range test that
# the first worker of the study runs (lrsearch.workers.lr_range). Until then the
# range is the test's own span, so code reading low/high keeps working; workers
# sample inside the stored bounds instead (StudyDefinition.with_learning_rate).
AUTO_LR_SPAN = (1.0e-6, 10.0)


class LearningRateRange(FloatRange):
    """The learning-rate dimension: a float range, or ``auto`` (bounds from the range test)."""

    auto: bool = False

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        if self.auto:
            return "auto"
        data = handler(self)
        if isinstance(data, dict):
            data.pop("auto", None)
        return data


class IntRange(_Model):
    """An integer dimension, both ends included: ``low < high``."""

    low: int = Field(ge=-INT32_MAX, le=INT32_MAX)
    high: int = Field(ge=-INT32_MAX, le=INT32_MAX)

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be less than high ({self.high})")
        return self


class ParamRange(_Model):
    """Override of one schedule parameter's range (numeric) or choices (categorical)."""

    low: float | None = None
    high: float | None = None
    log: bool | None = Field(default=None, description="None keeps the parameter's default scale")
    choices: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=16
    )


class Objective(_Model):
    """What each trial reports every epoch, and which way is better."""

    # Any name for a ``task: external`` study; a built-in task's metric is checked
    # against BUILTIN_METRICS with the other cross-field rules.
    metric: str = Field(
        default="val_accuracy", min_length=1, max_length=64, pattern=r"^[A-Za-z_][\w.\-]*$"
    )
    direction: Direction | None = None

    @property
    def resolved_direction(self) -> Direction:
        return self.direction or _DEFAULT_DIRECTION.get(self.metric, "maximize")


class Budget(_Model):
    """How many trials the study finishes, and how long each may train."""

    n_trials: int = Field(default=60, gt=0, le=100_000)
    max_epochs: int = Field(default=20, gt=0, le=MAX_EPOCHS)
    max_retries: int = Field(default=2, ge=0, le=10)
    # Stop handing out trials after this many consecutive failures with the same
    # error class (the task cannot load, say); 0 turns the check off.
    max_consecutive_failures: int = Field(default=3, ge=0, le=1000)


class PrunerSpec(_Model):
    type: PrunerType = "hyperband"
    min_epochs: int = Field(default=1, ge=1, le=MAX_EPOCHS)
    reduction_factor: int = Field(default=3, ge=2, le=100)
    percentile: float = Field(default=25.0, gt=0.0, lt=100.0)
    schedule_aware: bool = Field(
        default=True,
        description=(
            "never prune during warm-up; judge cyclic trials at cycle ends "
            "(lrsearch.search_space._pruning); false: the plain pruner"
        ),
    )


def _warmup_tag(value: Any) -> str:
    return "fixed" if isinstance(value, int) and not isinstance(value, bool) else "range"


class SearchSpace(_Model):
    """The dimensions Optuna samples. Optimizer and weight decay are off by default."""

    schedules: list[ScheduleType] = Field(default=list(SCHEDULE_TYPES), min_length=1)
    warmup_epochs: Annotated[
        Annotated[IntRange, Tag("range")] | Annotated[int, Tag("fixed")],
        Discriminator(_warmup_tag),
    ] = IntRange(low=0, high=5)
    learning_rate: LearningRateRange = LearningRateRange(low=1.0e-4, high=1.0, log=True)
    batch_size: list[int] = Field(default=[32, 64, 128, 256], min_length=1, max_length=64)
    dropout: FloatRange = FloatRange(low=0.0, high=0.5)
    weight_init: list[WeightInit] = Field(default=list(WEIGHT_INITS), min_length=1)
    optimizer: list[OptimizerName] | None = Field(default=None, min_length=1)
    weight_decay: FloatRange | None = None
    schedule_params: dict[ScheduleType, dict[str, ParamRange]] = Field(default_factory=dict)

    _unique_schedules = field_validator("schedules")(_no_duplicates)
    _unique_inits = field_validator("weight_init")(_no_duplicates)
    _unique_optimizers = field_validator("optimizer")(_no_duplicates)

    @field_validator("batch_size")
    @classmethod
    def _batch_sizes(cls, values: list[int]) -> list[int]:
        bad = [v for v in values if not 0 < v <= MAX_BATCH_SIZE]
        if bad:
            raise ValueError(f"batch sizes must lie in [1, {MAX_BATCH_SIZE}], got {bad}")
        _no_duplicates(values)
        return values

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup(cls, value: IntRange | int) -> IntRange | int:
        low, high = (value, value) if isinstance(value, int) else (value.low, value.high)
        if low < 0:
            raise ValueError(f"warm-up epochs cannot be negative, got {low}")
        if high > MAX_EPOCHS:
            raise ValueError(f"warm-up epochs must be at most {MAX_EPOCHS}, got {high}")
        return value

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _auto_learning_rate(cls, value: Any) -> Any:
        if value == "auto":
            low, high = AUTO_LR_SPAN
            return LearningRateRange(low=low, high=high, log=True, auto=True)
        if isinstance(value, str):
            raise ValueError(f"must be {{low, high, log}} or 'auto', got {value!r}")
        return value

    @field_validator("learning_rate")
    @classmethod
    def _learning_rate(cls, value: LearningRateRange) -> LearningRateRange:
        if value.low <= 0.0:
            raise ValueError(f"learning rates must be positive, got low={value.low}")
        if value.high > MAX_LEARNING_RATE:
            raise ValueError(
                f"learning rates must be at most {MAX_LEARNING_RATE}, got high={value.high}"
            )
        return value

    @field_validator("dropout")
    @classmethod
    def _dropout(cls, value: FloatRange) -> FloatRange:
        if value.low < 0.0 or value.high >= 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got [{value.low}, {value.high}]")
        return value

    @field_validator("weight_decay")
    @classmethod
    def _weight_decay(cls, value: FloatRange | None) -> FloatRange | None:
        if value is not None and value.low < 0.0:
            raise ValueError(f"weight decay cannot be negative, got {value.low}")
        if value is not None and value.high > MAX_WEIGHT_DECAY:
            raise ValueError(f"weight decay must be at most {MAX_WEIGHT_DECAY}, got {value.high}")
        return value


class StudyDefinition(_Model):
    """A study as a user submits it. Every field but ``name`` and ``task`` has a default."""

    name: str = Field(pattern=NAME_PATTERN, description="unique study name")
    task: str = Field(min_length=1, max_length=128, description="a registered task")
    objective: Objective = Objective()
    budget: Budget = Budget()
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    search_space: SearchSpace = SearchSpace()
    data_seed: int = Field(
        default=0,
        ge=0,
        le=SEED_MAX,
        description=(
            "fixes the task's train/validation split and any generated data; "
            "independent of sampler.seed, so every sampler seed sees the same data"
        ),
    )
    warm_start: WarmStart | None = Field(
        default=None,
        description="first trials: the best configurations of earlier studies (same tenant)",
    )
    confirm: Confirm | None = Field(
        default=None,
        description="re-train each schedule type's winners with other seeds once the "
        "budget is spent; left out: {top_k: 1, seeds: 2} from 30 trials, off below",
    )
    task_options: TaskOptions = Field(
        default_factory=dict,
        description="passed to the built-in task, over the worker's own options (key by key)",
    )
    packing: bool = Field(
        default=True,
        description="workers started with --pack K may train up to K of this study's "
        "compatible trials fused together; false: always one trial at a time",
    )

    @property
    def direction(self) -> Direction:
        return self.objective.resolved_direction

    @property
    def learning_rate_auto(self) -> bool:
        """Whether the learning-rate bounds come from the LR range test."""
        return self.search_space.learning_rate.auto

    def with_learning_rate(self, low: float, high: float) -> StudyDefinition:
        """This definition sampling the learning rate log-uniformly in ``[low, high]``.

        How a worker turns an ``auto`` study into the one it samples, once the
        range test's bounds are stored with the study.
        """
        rng = LearningRateRange(low=low, high=high, log=True)
        space = self.search_space.model_copy(update={"learning_rate": rng})
        return self.model_copy(update={"search_space": space})

    def warmup_bounds(self) -> tuple[int, int]:
        w = self.search_space.warmup_epochs
        return (w, w) if isinstance(w, int) else (w.low, w.high)


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        msg = str(e["msg"]).removeprefix("Value error, ")
        # Tagged unions put their tag in the path; users only know the field names.
        loc = tuple(p for p in e["loc"] if p not in _UNION_TAGS)
        problems.append(Problem(loc=loc, msg=msg))
    return problems


_UNION_TAGS = {"range", "fixed"}


def _cross_field_problems(d: StudyDefinition, known_tasks: Collection[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    if d.task == EXTERNAL_TASK:
        if d.learning_rate_auto:
            problems.append(
                Problem(
                    ("search_space", "learning_rate"),
                    "auto needs a built-in task (a worker runs the LR range test on it); "
                    "give {low, high} for a task: external study",
                )
            )
        if d.objective.direction is None:
            problems.append(
                Problem(
                    ("objective", "direction"),
                    "required for a task: external study (maximize or minimize)",
                )
            )
    elif d.objective.metric not in BUILTIN_METRICS:
        problems.append(
            Problem(
                ("objective", "metric"),
                f"must be one of {list(BUILTIN_METRICS)} for a built-in task "
                "(any name only with task: external)",
            )
        )
    if known_tasks is not None and d.task not in known_tasks and d.task != EXTERNAL_TASK:
        problems.append(
            Problem(("task",), f"unknown task {d.task!r}; registered: {sorted(known_tasks)}")
        )
    sources = d.warm_start.sources if d.warm_start is not None else []
    if isinstance(sources, list) and d.name in sources:
        problems.append(Problem(("warm_start", "from"), "a study cannot warm-start from itself"))
    max_epochs = d.budget.max_epochs
    _, warm_high = d.warmup_bounds()
    if warm_high >= max_epochs:
        problems.append(
            Problem(
                ("search_space", "warmup_epochs"),
                f"warm-up ({warm_high} epochs) must be shorter than budget.max_epochs "
                f"({max_epochs})",
            )
        )
    if d.pruner.min_epochs > max_epochs:
        problems.append(
            Problem(
                ("pruner", "min_epochs"),
                f"min_epochs ({d.pruner.min_epochs}) exceeds budget.max_epochs ({max_epochs})",
            )
        )
    for sched, overrides in d.search_space.schedule_params.items():
        base: Loc = ("search_space", "schedule_params", sched)
        if sched not in d.search_space.schedules:
            problems.append(Problem(base, f"schedule {sched!r} is not in search_space.schedules"))
        for pname, rng in overrides.items():
            problems.extend(_override_problems((*base, pname), sched, pname, rng))
    return problems


def _override_problems(loc: Loc, sched: ScheduleType, pname: str, rng: ParamRange) -> list[Problem]:
    specs = SCHEDULE_PARAMS[sched]
    if pname not in specs:
        return [Problem(loc, f"unknown parameter for {sched!r}; known: {sorted(specs)}")]
    spec = specs[pname]
    if spec.kind == "categorical":
        if rng.choices is None or rng.low is not None or rng.high is not None:
            return [Problem(loc, f"{sched}.{pname} is categorical: give 'choices'")]
        bad = [c for c in rng.choices if c not in spec.choices]
        if bad:
            return [Problem((*loc, "choices"), f"unknown choices {bad}; known: {spec.choices}")]
        return []
    if rng.choices is not None or rng.low is None or rng.high is None:
        return [Problem(loc, f"{sched}.{pname} is numeric: give 'low' and 'high'")]
    problems = []
    if spec.kind == "int" and not (rng.low.is_integer() and rng.high.is_integer()):
        problems.append(Problem(loc, f"{sched}.{pname} takes integers"))
    if rng.low >= rng.high:
        problems.append(Problem(loc, f"low ({rng.low}) must be less than high ({rng.high})"))
    log = spec.log if rng.log is None else rng.log
    if log and rng.low <= 0:
        problems.append(Problem(loc, f"a log range needs low > 0, got {rng.low}"))
    if spec.min_low is not None and (
        rng.low < spec.min_low or (spec.low_open and rng.low == spec.min_low)
    ):
        problems.append(
            Problem((*loc, "low"), f"must be {'>' if spec.low_open else '>='} {spec.min_low}")
        )
    if spec.max_high is not None and (
        rng.high > spec.max_high or (spec.high_open and rng.high == spec.max_high)
    ):
        problems.append(
            Problem((*loc, "high"), f"must be {'<' if spec.high_open else '<='} {spec.max_high}")
        )
    return problems


def _fit_default_warmup(d: StudyDefinition) -> StudyDefinition:
    """Shrink the *default* warm-up range to fit short budgets; explicit ranges are checked."""
    space = d.search_space
    if "warmup_epochs" in space.model_fields_set:
        return d
    low, high = d.warmup_bounds()
    fitted_high = min(high, d.budget.max_epochs - 1)
    if fitted_high == high:
        return d
    warmup: IntRange | int = IntRange(low=low, high=fitted_high) if fitted_high > low else low
    new_space = space.model_copy(update={"warmup_epochs": warmup})
    # model_copy keeps fields_set; the fitted value stays marked as a default.
    return d.model_copy(update={"search_space": new_space})


# Which top-level sections each cross-field rule reads, besides the one it reports on.
_CROSS_DEPENDS: dict[Loc, set[str]] = {
    ("search_space", "warmup_epochs"): {"budget", "search_space"},
    ("pruner", "min_epochs"): {"budget", "pruner"},
}
_PLACEHOLDERS = {"name": "placeholder", "task": "placeholder"}


def _partial_cross_problems(
    data: Mapping[str, Any], problems: list[Problem], known_tasks: Collection[str] | None
) -> list[Problem]:
    """Cross-field problems among the sections that did parse, so none goes unreported."""
    broken = {str(p.loc[0]) for p in problems if p.loc}
    if not problems or any(not p.loc for p in problems):
        return []
    patched = {k: v for k, v in data.items() if k not in broken}
    for key in broken & set(_PLACEHOLDERS):
        patched[key] = _PLACEHOLDERS[key]
    try:
        definition = _fit_default_warmup(StudyDefinition.model_validate(patched))
    except ValidationError:
        return []
    found = []
    for problem in _cross_field_problems(definition, known_tasks):
        depends = _CROSS_DEPENDS.get(problem.loc[:2], {str(problem.loc[0])})
        if not depends & broken:
            found.append(problem)
    return found


def parse_definition(
    data: Mapping[str, Any] | StudyDefinition, *, known_tasks: Collection[str] | None = None
) -> StudyDefinition:
    """Validate a study definition and return it with every default filled in.

    Args:
        data: The definition as parsed from JSON or YAML (or an existing model to re-check).
        known_tasks: Names of the registered tasks; ``None`` skips the task-name check.

    Raises:
        DefinitionError: With every problem found, each with its field path.
    """
    if isinstance(data, StudyDefinition):
        data = data.model_dump(mode="json")
    if not isinstance(data, Mapping):
        raise DefinitionError([Problem((), "a study definition must be a JSON/YAML object")])
    try:
        definition = StudyDefinition.model_validate(dict(data))
    except ValidationError as err:
        problems = _pydantic_problems(err)
        raise DefinitionError(
            problems + _partial_cross_problems(data, problems, known_tasks)
        ) from None
    definition = _fit_default_warmup(definition)
    definition = definition.model_copy(update={"sampler": resolve_balance(definition.sampler)})
    if definition.confirm is None:
        # Stored as decided, so the stored definition says what runs.
        definition = definition.model_copy(
            update={"confirm": default_confirm(definition.budget.n_trials)}
        )
    problems = _cross_field_problems(definition, known_tasks)
    if problems:
        raise DefinitionError(problems)
    return definition
