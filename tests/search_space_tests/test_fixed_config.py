"""validate_fixed_params: a user-given configuration (e.g. an enqueued baseline) vs its study."""

from __future__ import annotations

import contextlib
from typing import Any

import optuna
import pytest

from lrsearch.search_space import (
    ConfigError,
    CosineSchedule,
    CyclicSchedule,
    DefinitionError,
    ExponentialSchedule,
    PlateauSchedule,
    SearchSpaceError,
    StepSchedule,
    StudyDefinition,
    TrialConfig,
    WarmupSchedule,
    parse_definition,
    sample_config,
    validate_fixed_params,
)

BASE: dict[str, Any] = {"name": "baseline-study", "task": "digits-mlp"}

# Valid on the default space (learning rate 1e-4..1 log, dropout 0..0.5, warm-up 0..5).
BASELINE: dict[str, Any] = {
    "schedule": "step",
    "learning_rate": 0.01,
    "batch_size": 64,
    "dropout": 0.1,
    "weight_init": "xavier_uniform",
    "warmup_epochs": 2,
    "step.step_size": 3,
    "step.gamma": 0.5,
}
COMMON = {k: v for k, v in BASELINE.items() if "." not in k and k != "schedule"}

# One valid set of own parameters per schedule type, inside the default ranges.
SCHEDULE_BASELINES: dict[str, tuple[dict[str, Any], Any]] = {
    "step": (
        {"step.step_size": 3, "step.gamma": 0.5},
        StepSchedule(step_size=3, gamma=0.5),
    ),
    "exponential": ({"exponential.gamma": 0.9}, ExponentialSchedule(gamma=0.9)),
    "cosine": ({"cosine.eta_min": 0.05}, CosineSchedule(eta_min=0.05)),
    "plateau": (
        {"plateau.factor": 0.5, "plateau.patience": 2},
        PlateauSchedule(factor=0.5, patience=2),
    ),
    "cyclic": (
        {"cyclic.max_lr": 4.0, "cyclic.step_size": 2, "cyclic.mode": "triangular2"},
        CyclicSchedule(max_lr=4.0, step_size=2, mode="triangular2"),
    ),
    "warmup": (
        {"warmup.start_factor": 0.1, "warmup.ramp_epochs": 3},
        WarmupSchedule(start_factor=0.1, ramp_epochs=3),
    ),
}


def with_(**changes: Any) -> dict[str, Any]:
    """BASELINE with some params replaced (keys use '__' for '.')."""
    return {**BASELINE, **{k.replace("__", "."): v for k, v in changes.items()}}


def without(*names: str) -> dict[str, Any]:
    return {k: v for k, v in BASELINE.items() if k not in names}


def config_problems(definition: StudyDefinition, params: dict[str, Any]) -> list[Any]:
    with pytest.raises(ConfigError) as info:
        validate_fixed_params(definition, params)
    err = info.value
    assert isinstance(err, SearchSpaceError)
    assert err.problems
    for p in err.problems:
        assert len(p.loc) == 1, "fixed-config problems are located by Optuna param name"
        assert p.msg.strip()
        assert str(p.loc[0]) in str(err)
    return list(err.problems)


# --------------------------------------------------------------------------- valid


def test_valid_baseline_gives_the_right_config(default_definition: StudyDefinition) -> None:
    cfg = validate_fixed_params(default_definition, BASELINE)
    assert cfg == TrialConfig(
        schedule=StepSchedule(step_size=3, gamma=0.5),
        learning_rate=0.01,
        batch_size=64,
        dropout=0.1,
        weight_init="xavier_uniform",
        warmup_epochs=2,
        optimizer="sgd",
        weight_decay=0.0,
        max_epochs=20,
    )
    assert cfg.schedule_type == "step"
    assert {k: cfg.to_params()[k] for k in BASELINE} == BASELINE


@pytest.mark.parametrize("schedule", list(SCHEDULE_BASELINES))
def test_valid_baseline_for_every_schedule_type(
    default_definition: StudyDefinition, schedule: str
) -> None:
    own, expected_schedule = SCHEDULE_BASELINES[schedule]
    params = {**COMMON, "schedule": schedule, **own}
    cfg = validate_fixed_params(default_definition, params)
    assert cfg.schedule == expected_schedule
    assert cfg.schedule_type == schedule
    # The worker replays an enqueued baseline through sample_config: same result.
    assert sample_config(optuna.trial.FixedTrial(params), default_definition) == cfg  # type: ignore[arg-type]


def test_range_ends_are_inside(default_definition: StudyDefinition) -> None:
    params = with_(
        learning_rate=1.0, dropout=0.0, warmup_epochs=5, step__step_size=10, step__gamma=0.1
    )
    cfg = validate_fixed_params(default_definition, params)
    assert (cfg.learning_rate, cfg.dropout, cfg.warmup_epochs) == (1.0, 0.0, 5)
    cfg = validate_fixed_params(default_definition, with_(learning_rate=1e-4, dropout=0.5))
    assert (cfg.learning_rate, cfg.dropout) == (1e-4, 0.5)


def test_integral_float_for_an_int_param_is_accepted(default_definition: StudyDefinition) -> None:
    cfg = validate_fixed_params(default_definition, with_(step__step_size=3.0, warmup_epochs=1.0))
    assert cfg.schedule == StepSchedule(step_size=3, gamma=0.5)
    assert isinstance(cfg.schedule.step_size, int)
    assert cfg.warmup_epochs == 1
    assert isinstance(cfg.warmup_epochs, int)


def test_int_for_a_float_param_is_accepted(default_definition: StudyDefinition) -> None:
    cfg = validate_fixed_params(default_definition, with_(learning_rate=1))
    assert cfg.learning_rate == 1.0


def test_optimizer_and_weight_decay_when_sampled() -> None:
    definition = parse_definition(
        {
            **BASE,
            "search_space": {
                "optimizer": ["adam", "sgd"],
                "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
            },
        }
    )
    cfg = validate_fixed_params(definition, with_(optimizer="adam", weight_decay=1e-4))
    assert (cfg.optimizer, cfg.weight_decay) == ("adam", 1e-4)
    problems = config_problems(definition, BASELINE)
    assert {p.loc for p in problems} == {("optimizer",), ("weight_decay",)}
    problems = config_problems(definition, with_(optimizer="rmsprop", weight_decay=0.5))
    assert {p.loc for p in problems} == {("optimizer",), ("weight_decay",)}


def test_fixed_warmup_is_filled_in_and_not_a_param() -> None:
    definition = parse_definition({**BASE, "search_space": {"warmup_epochs": 3}})
    cfg = validate_fixed_params(definition, without("warmup_epochs"))
    assert cfg.warmup_epochs == 3
    problems = config_problems(definition, BASELINE)
    assert [p.loc for p in problems] == [("warmup_epochs",)]


def test_schedule_param_overrides_narrow_what_is_valid() -> None:
    definition = parse_definition(
        {
            **BASE,
            "search_space": {
                "schedule_params": {
                    "step": {"gamma": {"low": 0.2, "high": 0.4}},
                    "cyclic": {"mode": {"choices": ["exp_range"]}},
                }
            },
        }
    )
    assert validate_fixed_params(definition, with_(step__gamma=0.3)).schedule.gamma == 0.3  # type: ignore[union-attr]
    assert [p.loc for p in config_problems(definition, BASELINE)] == [("step.gamma",)]
    own, _ = SCHEDULE_BASELINES["cyclic"]
    cyclic = {**COMMON, "schedule": "cyclic", **own}
    assert [p.loc for p in config_problems(definition, cyclic)] == [("cyclic.mode",)]
    cyclic["cyclic.mode"] = "exp_range"
    assert validate_fixed_params(definition, cyclic).schedule.mode == "exp_range"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- one problem each


@pytest.mark.parametrize(
    ("params", "locs"),
    [
        # missing
        pytest.param(without("learning_rate"), [("learning_rate",)], id="missing-learning-rate"),
        pytest.param(without("batch_size"), [("batch_size",)], id="missing-batch-size"),
        pytest.param(without("warmup_epochs"), [("warmup_epochs",)], id="missing-warmup"),
        pytest.param(without("step.gamma"), [("step.gamma",)], id="missing-schedule-param"),
        # unknown
        pytest.param(with_(momentum=0.9), [("momentum",)], id="unknown-param"),
        pytest.param(with_(gamma=0.5), [("gamma",)], id="un-namespaced-schedule-param"),
        pytest.param(with_(step__foo=1), [("step.foo",)], id="unknown-schedule-param"),
        pytest.param(
            with_(cosine__eta_min=0.01), [("cosine.eta_min",)], id="other-schedules-param"
        ),
        pytest.param(
            with_(exponential__gamma=0.9), [("exponential.gamma",)], id="other-schedule-same-name"
        ),
        pytest.param(with_(optimizer="adam"), [("optimizer",)], id="optimizer-not-sampled"),
        pytest.param(with_(weight_decay=0.0), [("weight_decay",)], id="weight-decay-not-sampled"),
        # out of range
        pytest.param(with_(learning_rate=2.0), [("learning_rate",)], id="lr-above"),
        pytest.param(with_(learning_rate=1e-5), [("learning_rate",)], id="lr-below"),
        pytest.param(with_(learning_rate=float("nan")), [("learning_rate",)], id="lr-nan"),
        pytest.param(with_(learning_rate=float("inf")), [("learning_rate",)], id="lr-inf"),
        pytest.param(with_(dropout=0.6), [("dropout",)], id="dropout-above"),
        pytest.param(with_(dropout=-0.1), [("dropout",)], id="dropout-below"),
        pytest.param(with_(warmup_epochs=6), [("warmup_epochs",)], id="warmup-above"),
        pytest.param(with_(warmup_epochs=-1), [("warmup_epochs",)], id="warmup-negative"),
        pytest.param(with_(step__gamma=0.95), [("step.gamma",)], id="gamma-above-default"),
        pytest.param(with_(step__step_size=11), [("step.step_size",)], id="step-size-above"),
        pytest.param(with_(step__step_size=0), [("step.step_size",)], id="step-size-zero"),
        # categorical
        pytest.param(with_(batch_size=48), [("batch_size",)], id="batch-size-not-in-list"),
        pytest.param(with_(weight_init="he"), [("weight_init",)], id="weight-init-unknown"),
        # wrong type
        pytest.param(with_(learning_rate="0.01"), [("learning_rate",)], id="str-for-float"),
        pytest.param(with_(learning_rate=None), [("learning_rate",)], id="none-for-float"),
        pytest.param(with_(learning_rate=True), [("learning_rate",)], id="bool-for-float"),
        pytest.param(with_(dropout=[0.1]), [("dropout",)], id="list-for-float"),
        pytest.param(with_(step__step_size=True), [("step.step_size",)], id="bool-for-int"),
        pytest.param(with_(warmup_epochs=True), [("warmup_epochs",)], id="bool-for-warmup"),
        pytest.param(with_(step__step_size=2.5), [("step.step_size",)], id="fraction-for-int"),
        pytest.param(with_(warmup_epochs="2"), [("warmup_epochs",)], id="str-for-int"),
        pytest.param(with_(batch_size="64"), [("batch_size",)], id="str-batch-size"),
        pytest.param(with_(batch_size=True), [("batch_size",)], id="bool-batch-size"),
        pytest.param(with_(batch_size=64.5), [("batch_size",)], id="fraction-batch-size"),
    ],
)
def test_each_problem_is_listed_with_its_name(
    default_definition: StudyDefinition, params: dict[str, Any], locs: list[tuple[str]]
) -> None:
    problems = config_problems(default_definition, params)
    assert [p.loc for p in problems] == locs


def test_unknown_schedule_is_reported_first(default_definition: StudyDefinition) -> None:
    problems = config_problems(default_definition, with_(schedule="linear"))
    assert problems[0].loc == ("schedule",)
    # The step.* params no longer belong to any chosen schedule.
    assert {p.loc for p in problems} <= {("schedule",), ("step.step_size",), ("step.gamma",)}


def test_schedule_outside_the_studys_list_is_rejected() -> None:
    definition = parse_definition({**BASE, "search_space": {"schedules": ["cosine", "cyclic"]}})
    problems = config_problems(definition, BASELINE)
    assert problems[0].loc == ("schedule",)
    assert "cosine" in problems[0].msg


def test_missing_schedule_is_reported(default_definition: StudyDefinition) -> None:
    problems = config_problems(default_definition, without("schedule"))
    assert problems[0].loc == ("schedule",)
    assert problems[0].msg == "missing"


def test_several_problems_are_all_listed(default_definition: StudyDefinition) -> None:
    params = {
        "schedule": "step",
        "learning_rate": "fast",  # wrong type
        "batch_size": 100,  # not in list
        "dropout": 0.9,  # out of range
        "weight_init": "default",
        # warmup_epochs missing, step.step_size missing
        "step.gamma": 2.0,  # out of range
        "cosine.eta_min": 0.1,  # another schedule's
        "momentum": 0.9,  # unknown
    }
    problems = config_problems(default_definition, params)
    assert {p.loc for p in problems} == {
        ("learning_rate",),
        ("batch_size",),
        ("dropout",),
        ("warmup_epochs",),
        ("step.step_size",),
        ("step.gamma",),
        ("cosine.eta_min",),
        ("momentum",),
    }
    assert len(problems) == 8
    by_name = {p.loc[0]: p.msg for p in problems}
    assert by_name["warmup_epochs"] == "missing"
    assert by_name["step.step_size"] == "missing"


def test_config_error_serialises_for_the_rest_layer(default_definition: StudyDefinition) -> None:
    problems = config_problems(default_definition, with_(dropout=0.9, momentum=1))
    assert [p.as_dict()["loc"] for p in problems] == [["dropout"], ["momentum"]]


# --------------------------------------------------------------------------- range ends


@pytest.mark.parametrize(
    ("space", "params"),
    [
        pytest.param(
            {"learning_rate": {"low": 0.0, "high": 0.5}},
            with_(learning_rate=0.0),
            id="learning-rate-zero",
        ),
        pytest.param(
            {"learning_rate": {"low": -1.0, "high": 0.5}},
            with_(learning_rate=-0.5),
            id="learning-rate-negative",
        ),
        pytest.param(
            {"schedule_params": {"step": {"gamma": {"low": 0.0, "high": 0.5}}}},
            with_(step__gamma=0.0),
            id="step-gamma-zero",
        ),
        pytest.param(
            {"schedule_params": {"exponential": {"gamma": {"low": 0.0, "high": 0.5}}}},
            {**COMMON, "schedule": "exponential", "exponential.gamma": 0.0},
            id="exponential-gamma-zero",
        ),
        pytest.param(
            {"schedule_params": {"warmup": {"start_factor": {"low": 0.0, "high": 0.5}}}},
            {**COMMON, "schedule": "warmup", "warmup.start_factor": 0.0, "warmup.ramp_epochs": 2},
            id="warmup-start-factor-zero",
        ),
        pytest.param(
            {"schedule_params": {"plateau": {"factor": {"low": 0.5, "high": 1.0}}}},
            {**COMMON, "schedule": "plateau", "plateau.factor": 1.0, "plateau.patience": 1},
            id="plateau-factor-one",
        ),
    ],
)
def test_range_end_at_a_trial_config_bound_never_raises_a_raw_validation_error(
    space: dict[str, Any], params: dict[str, Any]
) -> None:
    """A range end that TrialConfig itself rejects (learning_rate <= 0, a gamma or start_factor
    of 0, plateau.factor of 1): either the definition rejects the range, or the value gives a
    config / a ConfigError, through validate_fixed_params and through sample_config alike."""
    try:
        definition = parse_definition({**BASE, "search_space": space})
    except DefinitionError:
        return
    with contextlib.suppress(ConfigError):
        validate_fixed_params(definition, params)
    # The worker path: an enqueued trial with these params is replayed through sample_config.
    with contextlib.suppress(ConfigError):
        sample_config(optuna.trial.FixedTrial(params), definition)  # type: ignore[arg-type]
