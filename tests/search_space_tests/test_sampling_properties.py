"""Property tests: whatever valid definition a user submits, sampling stays inside it.

Random valid definitions are drawn with hypothesis and sampled for real with an
in-memory Optuna study. The bounds each sampled value is checked against are
computed here, from the raw definition and ``SCHEDULE_PARAMS``, not read back
from search_space's own helpers.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrsearch.search_space import (
    OPTIMIZERS,
    SCHEDULE_PARAMS,
    SCHEDULE_TYPES,
    WEIGHT_INITS,
    ParamSpec,
    StudyDefinition,
    TrialConfig,
    parse_definition,
    sample_config,
    validate_fixed_params,
)
from lrsearch.search_space._definition import MAX_LEARNING_RATE

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TRIALS_PER_EXAMPLE = 10
BASE_DIMENSIONS = {"schedule", "learning_rate", "batch_size", "dropout", "weight_init"}

# DESIGN.md, "Optuna trial data (contract: names)": the namespaced examples it lists.
DESIGN_SCHEDULE_PARAM_NAMES = {
    "step": {"step.step_size", "step.gamma"},
    "exponential": {"exponential.gamma"},
    "cosine": {"cosine.eta_min"},
    "plateau": {"plateau.factor", "plateau.patience"},
    "cyclic": {"cyclic.max_lr", "cyclic.step_size"},
    "warmup": set(),
}


# --------------------------------------------------------------------------- strategies


@st.composite
def param_overrides(draw: st.DrawFn, spec: ParamSpec) -> dict[str, Any]:
    """A valid override of one schedule parameter.

    Float parameters bounded to [0, 1] are kept strictly inside (0, 1): the ends
    themselves are covered by example tests in test_fixed_config.py.
    """
    if spec.kind == "categorical":
        choices = draw(st.lists(st.sampled_from(spec.choices), min_size=1, unique=True))
        return {"choices": choices}
    if spec.kind == "int":
        floor = int(spec.min_low or 0)
        low = draw(st.integers(floor, floor + 5))
        high = draw(st.integers(low + 1, low + 10))
        log = low >= 1 and draw(st.booleans())
        return {"low": low, "high": high, "log": log}
    if spec.max_high is not None and spec.max_high <= 1.0:
        low = draw(st.floats(0.01, 0.5))
        high = draw(st.floats(low + 0.01, 0.99))
    else:
        floor = spec.min_low or 0.0
        low = draw(st.floats(max(floor, 1e-3), floor + 5.0))
        high = draw(st.floats(low + 0.1, low + 20.0))
    return {"low": low, "high": high, "log": draw(st.booleans())}


@st.composite
def float_range(draw: st.DrawFn, low_min: float, low_max: float, high_max: float) -> dict[str, Any]:
    low = draw(st.floats(low_min, low_max))
    high = draw(st.floats(low + (low_max - low_min) * 1e-3 + 1e-9, high_max))
    return {"low": low, "high": high}


@st.composite
def raw_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """A raw (dict) study definition that must parse."""
    max_epochs = draw(st.integers(2, 40))
    lr_low = draw(st.floats(1e-6, 1.0))
    learning_rate = {
        "low": lr_low,
        "high": min(lr_low * draw(st.floats(1.01, 1e4)), MAX_LEARNING_RATE),
        "log": draw(st.booleans()),
    }
    dropout = draw(float_range(0.0, 0.8, 0.99))
    if draw(st.booleans()):
        warmup: int | dict[str, int] = draw(st.integers(0, max_epochs - 1))
    else:
        w_low = draw(st.integers(0, max_epochs - 2))
        warmup = {"low": w_low, "high": draw(st.integers(w_low + 1, max_epochs - 1))}
    schedules = draw(st.lists(st.sampled_from(SCHEDULE_TYPES), min_size=1, unique=True))
    overridden = draw(st.lists(st.sampled_from(schedules), unique=True))
    schedule_params: dict[str, dict[str, Any]] = {}
    for sched in overridden:
        chosen = {
            name: draw(param_overrides(spec))
            for name, spec in SCHEDULE_PARAMS[sched].items()
            if draw(st.booleans())
        }
        schedule_params[sched] = chosen
    search_space: dict[str, Any] = {
        "schedules": schedules,
        "warmup_epochs": warmup,
        "learning_rate": learning_rate,
        "batch_size": draw(st.lists(st.integers(1, 4096), min_size=1, max_size=6, unique=True)),
        "dropout": dropout,
        "weight_init": draw(st.lists(st.sampled_from(WEIGHT_INITS), min_size=1, unique=True)),
        "schedule_params": schedule_params,
    }
    if draw(st.booleans()):
        search_space["optimizer"] = draw(
            st.lists(st.sampled_from(OPTIMIZERS), min_size=1, unique=True)
        )
    if draw(st.booleans()):
        if draw(st.booleans()):
            wd_low = draw(st.floats(1e-8, 1e-2))
            search_space["weight_decay"] = {"low": wd_low, "high": wd_low * 100, "log": True}
        else:
            search_space["weight_decay"] = draw(float_range(0.0, 1e-2, 0.1))
    return {
        "name": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)),
        "task": "digits-mlp",
        "objective": {"metric": draw(st.sampled_from(["val_accuracy", "val_loss"]))},
        "budget": {"n_trials": TRIALS_PER_EXAMPLE, "max_epochs": max_epochs},
        "sampler": {
            "type": draw(st.sampled_from(["random", "tpe"])),
            "seed": draw(st.integers(0, 2**31 - 1)),
        },
        "pruner": {"type": "none"},
        "search_space": search_space,
    }


# --------------------------------------------------------------------------- helpers


def _sampler(raw: dict[str, Any]) -> optuna.samplers.BaseSampler:
    seed = raw["sampler"]["seed"]
    if raw["sampler"]["type"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # Few startup trials so that TPE's model, not its random start-up, proposes most trials.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=3)


def _expected_schedule_specs(raw: dict[str, Any], schedule: str) -> dict[str, dict[str, Any]]:
    """Each schedule parameter's allowed values: default spec, replaced by an override."""
    overrides = raw["search_space"]["schedule_params"].get(schedule, {})
    expected: dict[str, dict[str, Any]] = {}
    for name, spec in SCHEDULE_PARAMS[schedule].items():
        if spec.kind == "categorical":
            expected[name] = {"kind": spec.kind, "choices": spec.choices}
        else:
            expected[name] = {"kind": spec.kind, "low": spec.low, "high": spec.high}
        expected[name].update(overrides.get(name, {}))
    return expected


def _in_range(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value <= high


def _expected_param_names(raw: dict[str, Any], schedule: str) -> set[str]:
    space = raw["search_space"]
    names = set(BASE_DIMENSIONS)
    # A warm-up schedule never carries a warm-up prefix (it would ramp twice).
    if isinstance(space["warmup_epochs"], dict) and schedule != "warmup":
        names.add("warmup_epochs")
    if "optimizer" in space:
        names.add("optimizer")
    if "weight_decay" in space:
        names.add("weight_decay")
    return names | {f"{schedule}.{p}" for p in SCHEDULE_PARAMS[schedule]}  # type: ignore[index]


def _check_trial(
    raw: dict[str, Any], definition: StudyDefinition, trial: optuna.Trial, cfg: TrialConfig
) -> None:
    space = raw["search_space"]
    assert isinstance(cfg, TrialConfig)
    assert TrialConfig.model_validate_json(cfg.model_dump_json()) == cfg

    # Global dimensions.
    lr = space["learning_rate"]
    assert _in_range(cfg.learning_rate, lr["low"], lr["high"])
    assert cfg.learning_rate > 0
    assert cfg.batch_size in space["batch_size"]
    assert _in_range(cfg.dropout, space["dropout"]["low"], space["dropout"]["high"])
    assert 0.0 <= cfg.dropout < 1.0
    assert cfg.weight_init in space["weight_init"]
    warmup = space["warmup_epochs"]
    if cfg.schedule.type == "warmup":
        assert cfg.warmup_epochs == 0
    elif isinstance(warmup, int):
        assert cfg.warmup_epochs == warmup
    else:
        assert warmup["low"] <= cfg.warmup_epochs <= warmup["high"]
    assert cfg.warmup_epochs < cfg.max_epochs == raw["budget"]["max_epochs"]
    assert cfg.optimizer in space.get("optimizer", ["sgd"])
    if "weight_decay" in space:
        wd = space["weight_decay"]
        assert _in_range(cfg.weight_decay, wd["low"], wd["high"])
    else:
        assert cfg.weight_decay == 0.0

    # The schedule and its own parameters.
    schedule = cfg.schedule_type
    assert schedule in space["schedules"]
    fields = cfg.schedule.model_dump(exclude={"type"})
    expected = _expected_schedule_specs(raw, schedule)
    assert set(fields) == set(expected)
    for name, value in fields.items():
        spec = expected[name]
        if spec["kind"] == "categorical":
            assert value in spec["choices"], name
        else:
            assert _in_range(value, spec["low"], spec["high"]), (name, value, spec)
            if spec["kind"] == "int":
                assert isinstance(value, int), name

    # Optuna parameter names: exactly the chosen schedule's own, none of another's.
    params = trial.params
    assert set(params) == _expected_param_names(raw, schedule)
    others = [s for s in SCHEDULE_TYPES if s != schedule]
    assert not [p for p in params if p.split(".")[0] in others]
    assert params["schedule"] == schedule

    # The flat params of the config agree with what Optuna recorded.
    flat = cfg.to_params()
    assert {k: flat[k] for k in params} == params

    # A sampled trial is itself a valid fixed configuration, and the same one.
    assert validate_fixed_params(definition, params) == cfg


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(raw=raw_definitions())
def test_every_sampled_config_is_valid_and_inside_its_bounds(raw: dict[str, Any]) -> None:
    definition = parse_definition(raw)
    study = optuna.create_study(sampler=_sampler(raw), direction=definition.direction)
    for i in range(TRIALS_PER_EXAMPLE):
        trial = study.ask()
        cfg = sample_config(trial, definition)
        _check_trial(raw, definition, trial, cfg)
        # Some signal for TPE: a smooth function of the sampled values.
        study.tell(trial, math.log(cfg.learning_rate) + cfg.dropout + 0.01 * i)


@settings(max_examples=20, deadline=None, database=None)
@given(raw=raw_definitions())
def test_same_seed_gives_the_same_configs(raw: dict[str, Any]) -> None:
    definition = parse_definition(raw)

    def run() -> list[TrialConfig]:
        study = optuna.create_study(sampler=_sampler(raw))
        configs = []
        for i in range(5):
            trial = study.ask()
            configs.append(sample_config(trial, definition))
            study.tell(trial, float(i))
        return configs

    assert run() == run()


@settings(max_examples=30, deadline=None, database=None)
@given(raw=raw_definitions())
def test_fixed_trial_with_sampled_params_reproduces_the_config(raw: dict[str, Any]) -> None:
    """Replaying a trial's params (e.g. a retry) yields the very same TrialConfig."""
    definition = parse_definition(raw)
    study = optuna.create_study(sampler=_sampler(raw))
    trial = study.ask()
    cfg = sample_config(trial, definition)
    replayed = sample_config(optuna.trial.FixedTrial(trial.params), definition)  # type: ignore[arg-type]
    assert replayed == cfg


# --------------------------------------------------------------------------- examples


def test_every_schedule_type_is_reachable_on_the_default_space(
    default_definition: StudyDefinition,
) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    schedules: Counter[str] = Counter()
    inits: Counter[str] = Counter()
    batch_sizes: Counter[int] = Counter()
    for _ in range(200):
        trial = study.ask()
        cfg = sample_config(trial, default_definition)
        schedules[cfg.schedule_type] += 1
        inits[cfg.weight_init] += 1
        batch_sizes[cfg.batch_size] += 1
        study.tell(trial, cfg.learning_rate)
    assert set(schedules) == set(SCHEDULE_TYPES)
    assert set(inits) == set(WEIGHT_INITS)
    assert set(batch_sizes) == {32, 64, 128, 256}
    # Uniform over six types: 200 draws give each far more than a handful.
    assert min(schedules.values()) >= 10, schedules


@pytest.mark.parametrize("schedule", SCHEDULE_TYPES)
def test_param_names_follow_the_design_contract(minimal_raw: dict[str, Any], schedule: str) -> None:
    definition = parse_definition({**minimal_raw, "search_space": {"schedules": [schedule]}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    cfg = sample_config(trial, definition)
    assert cfg.schedule_type == schedule
    names = set(trial.params)
    assert names >= {"schedule", "learning_rate", "batch_size", "dropout", "weight_init"}
    # Sampled by default (warm-up range 0..5), except where it would ramp twice.
    assert ("warmup_epochs" in names) == (schedule != "warmup")
    assert names >= DESIGN_SCHEDULE_PARAM_NAMES[schedule]
    assert {n for n in names if "." in n} == {f"{schedule}.{p}" for p in SCHEDULE_PARAMS[schedule]}
    # Optimizer and weight decay are off by default: not Optuna dimensions at all.
    assert not names & {"optimizer", "weight_decay"}
    assert (cfg.optimizer, cfg.weight_decay) == ("sgd", 0.0)


def test_fixed_warmup_is_not_an_optuna_param(minimal_raw: dict[str, Any]) -> None:
    definition = parse_definition({**minimal_raw, "search_space": {"warmup_epochs": 3}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    trial = study.ask()
    cfg = sample_config(trial, definition)
    assert "warmup_epochs" not in trial.params
    assert cfg.warmup_epochs == 3
