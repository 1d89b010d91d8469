"""Invalid study definitions: every problem is reported, each with its exact field path.

The bad definition is the 422 path of ``POST /api/v1/studies`` (DESIGN.md, "Bad
input and faults"): the REST layer forwards ``Problem.loc`` as ``errors[].loc``,
so the paths asserted here are what users see.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrsearch.search_space import (
    SCHEDULE_TYPES,
    WEIGHT_INITS,
    DefinitionError,
    Problem,
    SearchSpaceError,
    StudyDefinition,
    parse_definition,
)

BASE: dict[str, Any] = {"name": "digits-schedules", "task": "digits-mlp"}
SS = "search_space"
SP = (SS, "schedule_params")


def defn(**sections: Any) -> dict[str, Any]:
    """BASE plus the given top-level sections."""
    return {**BASE, **sections}


def space(**fields: Any) -> dict[str, Any]:
    """BASE with the given search_space fields."""
    return defn(search_space=fields)


def problems_of(data: Any, **kwargs: Any) -> tuple[Problem, ...]:
    with pytest.raises(DefinitionError) as info:
        parse_definition(data, **kwargs)
    problems = info.value.problems
    assert problems, "a DefinitionError must carry at least one problem"
    for p in problems:
        assert isinstance(p, Problem)
        assert isinstance(p.loc, tuple)
        assert p.msg.strip()
    return problems


def locs_of(data: Any, **kwargs: Any) -> list[tuple[str | int, ...]]:
    return [p.loc for p in problems_of(data, **kwargs)]


# (id, definition, expected locs in order, parse_definition kwargs)
CASES: list[Any] = [
    # -- ranges ---------------------------------------------------------------
    ("lr-low-eq-high", space(learning_rate={"low": 0.1, "high": 0.1}), [(SS, "learning_rate")]),
    ("lr-low-gt-high", space(learning_rate={"low": 1.0, "high": 0.1}), [(SS, "learning_rate")]),
    (
        "lr-log-low-zero",
        space(learning_rate={"low": 0.0, "high": 0.1, "log": True}),
        [(SS, "learning_rate")],
    ),
    (
        "lr-log-low-negative",
        space(learning_rate={"low": -1.0, "high": 0.1, "log": True}),
        [(SS, "learning_rate")],
    ),
    (
        "lr-infinite",
        space(learning_rate={"low": 0.1, "high": float("inf")}),
        [(SS, "learning_rate", "high")],
    ),
    (
        "lr-nan",
        space(learning_rate={"low": float("nan"), "high": 1.0}),
        [(SS, "learning_rate", "low")],
    ),
    ("lr-missing-high", space(learning_rate={"low": 0.1}), [(SS, "learning_rate", "high")]),
    (
        "lr-not-a-number",
        space(learning_rate={"low": "x", "high": 1}),
        [(SS, "learning_rate", "low")],
    ),
    ("dropout-low-eq-high", space(dropout={"low": 0.3, "high": 0.3}), [(SS, "dropout")]),
    ("dropout-low-gt-high", space(dropout={"low": 0.4, "high": 0.2}), [(SS, "dropout")]),
    ("dropout-high-one", space(dropout={"low": 0.0, "high": 1.0}), [(SS, "dropout")]),
    ("dropout-high-above-one", space(dropout={"low": 0.5, "high": 1.5}), [(SS, "dropout")]),
    ("dropout-negative", space(dropout={"low": -0.1, "high": 0.5}), [(SS, "dropout")]),
    (
        "weight-decay-low-gt-high",
        space(weight_decay={"low": 0.1, "high": 0.01}),
        [(SS, "weight_decay")],
    ),
    (
        "weight-decay-log-low-zero",
        space(weight_decay={"low": 0.0, "high": 0.01, "log": True}),
        [(SS, "weight_decay")],
    ),
    (
        "weight-decay-negative",
        space(weight_decay={"low": -0.1, "high": 0.01}),
        [(SS, "weight_decay")],
    ),
    # -- lists ------------------------------------------------------------------
    ("schedules-empty", space(schedules=[]), [(SS, "schedules")]),
    ("weight-init-empty", space(weight_init=[]), [(SS, "weight_init")]),
    ("batch-size-empty", space(batch_size=[]), [(SS, "batch_size")]),
    ("optimizer-empty", space(optimizer=[]), [(SS, "optimizer")]),
    ("schedules-unknown", space(schedules=["step", "linear"]), [(SS, "schedules", 1)]),
    ("schedules-not-a-list", space(schedules="step"), [(SS, "schedules")]),
    ("weight-init-unknown", space(weight_init=["he", "default"]), [(SS, "weight_init", 0)]),
    ("optimizer-unknown", space(optimizer=["adam", "lion"]), [(SS, "optimizer", 1)]),
    ("schedules-duplicate", space(schedules=["step", "cosine", "step"]), [(SS, "schedules")]),
    ("weight-init-duplicate", space(weight_init=["default", "default"]), [(SS, "weight_init")]),
    ("batch-size-duplicate", space(batch_size=[32, 64, 32]), [(SS, "batch_size")]),
    ("optimizer-duplicate", space(optimizer=["sgd", "sgd"]), [(SS, "optimizer")]),
    ("batch-size-negative", space(batch_size=[32, -1]), [(SS, "batch_size")]),
    ("batch-size-zero", space(batch_size=[0]), [(SS, "batch_size")]),
    ("batch-size-fractional", space(batch_size=[32.5]), [(SS, "batch_size", 0)]),
    # -- budget and warm-up -----------------------------------------------------------
    ("n-trials-zero", defn(budget={"n_trials": 0}), [("budget", "n_trials")]),
    ("n-trials-negative", defn(budget={"n_trials": -3}), [("budget", "n_trials")]),
    ("max-epochs-zero", defn(budget={"max_epochs": 0}), [("budget", "max_epochs")]),
    ("max-epochs-negative", defn(budget={"max_epochs": -1}), [("budget", "max_epochs")]),
    ("max-retries-negative", defn(budget={"max_retries": -1}), [("budget", "max_retries")]),
    ("warmup-negative-int", space(warmup_epochs=-1), [(SS, "warmup_epochs")]),
    ("warmup-negative-range", space(warmup_epochs={"low": -2, "high": 3}), [(SS, "warmup_epochs")]),
    (
        "warmup-int-eq-max-epochs",
        defn(budget={"max_epochs": 5}, search_space={"warmup_epochs": 5}),
        [(SS, "warmup_epochs")],
    ),
    (
        "warmup-range-high-eq-max-epochs",
        defn(budget={"max_epochs": 5}, search_space={"warmup_epochs": {"low": 0, "high": 5}}),
        [(SS, "warmup_epochs")],
    ),
    (
        "warmup-range-high-gt-max-epochs",
        defn(budget={"max_epochs": 8}, search_space={"warmup_epochs": {"low": 2, "high": 9}}),
        [(SS, "warmup_epochs")],
    ),
    # -- name and task ------------------------------------------------------------
    ("name-leading-dash", {"name": "-bad", "task": "t"}, [("name",)]),
    ("name-space", {"name": "two words", "task": "t"}, [("name",)]),
    ("name-slash", {"name": "a/b", "task": "t"}, [("name",)]),
    ("name-empty", {"name": "", "task": "t"}, [("name",)]),
    ("name-too-long", {"name": "a" * 129, "task": "t"}, [("name",)]),
    ("name-not-a-string", {"name": 7, "task": "t"}, [("name",)]),
    ("name-missing", {"task": "t"}, [("name",)]),
    ("task-empty", {"name": "n", "task": ""}, [("task",)]),
    ("task-too-long", {"name": "n", "task": "t" * 129}, [("task",)]),
    ("task-missing", {"name": "n"}, [("task",)]),
    ("name-and-task-missing", {}, [("name",), ("task",)]),
    # -- objective, sampler, pruner ----------------------------------------------------
    ("metric-unknown", defn(objective={"metric": "accuracy"}), [("objective", "metric")]),
    ("direction-unknown", defn(objective={"direction": "up"}), [("objective", "direction")]),
    ("sampler-unknown", defn(sampler={"type": "grid"}), [("sampler", "type")]),
    ("sampler-seed-not-int", defn(sampler={"seed": "abc"}), [("sampler", "seed")]),
    ("pruner-unknown", defn(pruner={"type": "wilcoxon"}), [("pruner", "type")]),
    ("pruner-min-epochs-zero", defn(pruner={"min_epochs": 0}), [("pruner", "min_epochs")]),
    (
        "pruner-min-epochs-gt-max-epochs",
        defn(budget={"max_epochs": 10}, pruner={"min_epochs": 11}),
        [("pruner", "min_epochs")],
    ),
    ("pruner-percentile-100", defn(pruner={"percentile": 100}), [("pruner", "percentile")]),
    ("pruner-percentile-zero", defn(pruner={"percentile": 0}), [("pruner", "percentile")]),
    (
        "pruner-reduction-factor-1",
        defn(pruner={"reduction_factor": 1}),
        [("pruner", "reduction_factor")],
    ),
    # -- extra fields (extra="forbid") ----------------------------------------------------
    ("extra-top-level", defn(budgte={"n_trials": 5}), [("budgte",)]),
    ("extra-in-budget", defn(budget={"n_trial": 5}), [("budget", "n_trial")]),
    ("extra-in-search-space", space(learning_rte={"low": 0.1, "high": 1}), [(SS, "learning_rte")]),
    (
        "extra-in-range",
        space(learning_rate={"low": 0.1, "high": 1, "lgo": True}),
        [(SS, "learning_rate", "lgo")],
    ),
    # -- schedule_params overrides ---------------------------------------------------------
    (
        "override-unknown-param",
        space(schedule_params={"step": {"gama": {"low": 0.1, "high": 0.5}}}),
        [(*SP, "step", "gama")],
    ),
    (
        "override-param-of-another-schedule",
        space(schedule_params={"exponential": {"step_size": {"low": 1, "high": 4}}}),
        [(*SP, "exponential", "step_size")],
    ),
    (
        "override-unknown-schedule",
        space(schedule_params={"linear": {}}),
        [(*SP, "linear", "[key]")],
    ),
    (
        "override-schedule-not-in-list",
        space(
            schedules=["step"], schedule_params={"cosine": {"eta_min": {"low": 0, "high": 0.05}}}
        ),
        [(*SP, "cosine")],
    ),
    (
        "override-gamma-above-one",
        space(schedule_params={"step": {"gamma": {"low": 0.5, "high": 1.5}}}),
        [(*SP, "step", "gamma", "high")],
    ),
    (
        "override-exponential-gamma-above-one",
        space(schedule_params={"exponential": {"gamma": {"low": 0.9, "high": 1.01}}}),
        [(*SP, "exponential", "gamma", "high")],
    ),
    (
        "override-gamma-negative",
        space(schedule_params={"step": {"gamma": {"low": -0.5, "high": 0.5}}}),
        [(*SP, "step", "gamma", "low")],
    ),
    (
        "override-step-size-below-one",
        space(schedule_params={"step": {"step_size": {"low": 0, "high": 4}}}),
        [(*SP, "step", "step_size", "low")],
    ),
    (
        "override-max-lr-below-one",
        space(schedule_params={"cyclic": {"max_lr": {"low": 0.5, "high": 4.0}}}),
        [(*SP, "cyclic", "max_lr", "low")],
    ),
    (
        "override-low-gt-high",
        space(schedule_params={"step": {"gamma": {"low": 0.8, "high": 0.2}}}),
        [(*SP, "step", "gamma")],
    ),
    (
        "override-log-low-zero",
        space(schedule_params={"cosine": {"eta_min": {"low": 0.0, "high": 0.1, "log": True}}}),
        [(*SP, "cosine", "eta_min")],
    ),
    (
        "override-int-fractional",
        space(schedule_params={"step": {"step_size": {"low": 1.5, "high": 4}}}),
        [(*SP, "step", "step_size")],
    ),
    (
        "override-numeric-missing-high",
        space(schedule_params={"step": {"gamma": {"low": 0.2}}}),
        [(*SP, "step", "gamma")],
    ),
    (
        "override-numeric-with-choices",
        space(schedule_params={"step": {"gamma": {"choices": ["0.5"]}}}),
        [(*SP, "step", "gamma")],
    ),
    (
        "override-categorical-unknown-choice",
        space(schedule_params={"cyclic": {"mode": {"choices": ["triangular", "sine"]}}}),
        [(*SP, "cyclic", "mode", "choices")],
    ),
    (
        "override-categorical-with-range",
        space(schedule_params={"cyclic": {"mode": {"low": 0, "high": 1}}}),
        [(*SP, "cyclic", "mode")],
    ),
    (
        "override-categorical-empty-choices",
        space(schedule_params={"cyclic": {"mode": {"choices": []}}}),
        [(*SP, "cyclic", "mode", "choices")],
    ),
    (
        "override-extra-field",
        space(schedule_params={"step": {"gamma": {"low": 0.1, "hgih": 0.5}}}),
        [(*SP, "step", "gamma", "hgih")],
    ),
    # -- not an object ----------------------------------------------------------------
    ("input-list", [BASE], [()]),
    ("input-string", "name: x", [()]),
    ("input-none", None, [()]),
    ("input-int", 3, [()]),
]


@pytest.mark.parametrize(
    ("data", "expected_locs"),
    [pytest.param(data, locs, id=case_id) for case_id, data, locs in CASES],
)
def test_invalid_definition_reports_exact_field_path(
    data: Any, expected_locs: list[tuple[str | int, ...]]
) -> None:
    assert locs_of(data) == expected_locs


def test_unknown_task_is_reported_when_known_tasks_given() -> None:
    problems = problems_of(defn(task="imagenet"), known_tasks={"digits-mlp", "synthetic"})
    assert [p.loc for p in problems] == [("task",)]
    assert "imagenet" in problems[0].msg
    # Registered names are listed so that the user can fix the typo.
    assert "digits-mlp" in problems[0].msg


def test_task_is_not_checked_without_known_tasks() -> None:
    assert parse_definition(defn(task="anything")).task == "anything"
    assert parse_definition(defn(task="synthetic"), known_tasks=["synthetic"]).task == "synthetic"


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    ("data", "loc_prefix"),
    [
        pytest.param(
            space(learning_rate={"low": 0.0, "high": 0.1}),
            (SS, "learning_rate"),
            id="lr-linear-low-zero",
        ),
        pytest.param(
            space(learning_rate={"low": -1.0, "high": -0.5}),
            (SS, "learning_rate"),
            id="lr-negative-range",
        ),
        pytest.param(
            space(batch_size=[True, 64]),
            (SS, "batch_size"),
            id="batch-size-bool",
        ),
        pytest.param(
            space(warmup_epochs=True),
            (SS, "warmup_epochs"),
            id="warmup-bool",
        ),
    ],
)
def test_non_positive_lr_and_bool_as_int_are_rejected(
    data: Any, loc_prefix: tuple[str, ...]
) -> None:
    """A learning-rate range that reaches 0 or below, and JSON booleans where integers belong,
    are definition errors at the field's path rather than accepted values."""
    locs = locs_of(data)
    assert locs
    assert all(loc[: len(loc_prefix)] == loc_prefix for loc in locs), locs


@pytest.mark.parametrize(
    "warmup",
    [{"low": 3, "high": 2}, {"low": 2, "high": 2}, {"low": 0}, {"low": 0, "high": 3, "x": 1}],
    ids=["low-gt-high", "low-eq-high", "missing-high", "extra-field"],
)
def test_bad_warmup_range_has_a_clean_field_path(warmup: dict[str, Any]) -> None:
    """warmup_epochs takes an int or a range; a bad range gives exactly one problem."""
    locs = locs_of(space(warmup_epochs=warmup))
    assert len(locs) == 1, locs
    # The field itself, or a sub-field of the range: never a pydantic union-member tag.
    assert locs[0][:2] == (SS, "warmup_epochs")
    assert set(locs[0][2:]) <= {"low", "high", "x"}, locs


@pytest.mark.parametrize("via", ["model", "json-dump", "explicit-null"])
@pytest.mark.parametrize("max_epochs", [20, 3])
def test_definition_round_trips_through_parse(via: str, max_epochs: int) -> None:
    """Storage re-parses the stored definition JSON (optimizer: null in it) on every read."""
    first = parse_definition(defn(budget={"max_epochs": max_epochs}))
    if via == "model":
        again = parse_definition(first)
    elif via == "json-dump":
        again = parse_definition(first.model_dump(mode="json"))
    else:
        again = parse_definition(
            defn(budget={"max_epochs": max_epochs}, search_space={"optimizer": None})
        )
    assert again == first
    assert again.warmup_bounds() == first.warmup_bounds()


@pytest.mark.parametrize("via", ["model", "json-dump"])
def test_definition_with_optimizer_round_trips_through_parse(via: str) -> None:
    first = parse_definition(
        space(
            optimizer=["adam", "sgd"],
            weight_decay={"low": 1e-6, "high": 1e-2, "log": True},
            schedules=["cyclic", "cosine"],
            schedule_params={"cyclic": {"mode": {"choices": ["triangular2"]}}},
            warmup_epochs=2,
        )
    )
    again = parse_definition(first if via == "model" else first.model_dump(mode="json"))
    assert again == first


# --------------------------------------------------------------------------- many at once


def test_several_field_problems_are_all_reported() -> None:
    data = {
        "name": "bad name",
        "task": "digits-mlp",
        "colour": "blue",
        "budget": {"n_trials": 0, "max_epochs": 10},
        "sampler": {"type": "grid"},
        "search_space": {
            "schedules": [],
            "learning_rate": {"low": 1.0, "high": 0.1},
            "dropout": {"low": 0.0, "high": 1.0},
            "weight_init": ["he"],
        },
    }
    problems = problems_of(data)
    assert {p.loc for p in problems} == {
        ("name",),
        ("colour",),
        ("budget", "n_trials"),
        ("sampler", "type"),
        (SS, "schedules"),
        (SS, "learning_rate"),
        (SS, "dropout"),
        (SS, "weight_init", 0),
    }
    assert len(problems) == 8


def test_several_cross_field_problems_are_all_reported() -> None:
    data = {
        "name": "n",
        "task": "imagenet",
        "budget": {"max_epochs": 4},
        "pruner": {"min_epochs": 6},
        "search_space": {
            "schedules": ["step"],
            "warmup_epochs": {"low": 1, "high": 4},
            "schedule_params": {
                "step": {"gamma": {"low": 0.5, "high": 2.0}, "foo": {"low": 1, "high": 2}},
                "cosine": {"eta_min": {"low": 0.0, "high": 0.5}},
            },
        },
    }
    locs = {p.loc for p in problems_of(data, known_tasks=["digits-mlp"])}
    assert locs == {
        ("task",),
        (SS, "warmup_epochs"),
        ("pruner", "min_epochs"),
        (*SP, "step", "gamma", "high"),
        (*SP, "step", "foo"),
        (*SP, "cosine"),
    }


def test_override_with_several_faults_lists_each() -> None:
    data = space(schedule_params={"step": {"gamma": {"low": -1.0, "high": 2.0}}})
    assert set(locs_of(data)) == {(*SP, "step", "gamma", "low"), (*SP, "step", "gamma", "high")}


def test_field_and_cross_field_problems_are_reported_together() -> None:
    """DESIGN: '422 with every problem listed': a field error does not hide the cross-field
    checks (unknown task, pruner vs max_epochs), so one round trip shows everything."""
    data = {
        "name": "n",
        "task": "imagenet",
        "budget": {"max_epochs": 10},
        "pruner": {"min_epochs": 11},
        "search_space": {"learning_rate": {"low": 1.0, "high": 0.1}},
    }
    locs = {p.loc for p in problems_of(data, known_tasks=["digits-mlp"])}
    assert locs == {(SS, "learning_rate"), ("task",), ("pruner", "min_epochs")}


def test_definition_error_is_a_search_space_error_and_serialises() -> None:
    with pytest.raises(SearchSpaceError) as info:
        parse_definition(space(schedules=[], batch_size=[0]))
    err = info.value
    assert isinstance(err, DefinitionError)
    dicts = [p.as_dict() for p in err.problems]
    assert {tuple(d["loc"]) for d in dicts} == {(SS, "schedules"), (SS, "batch_size")}  # type: ignore[arg-type]
    assert all(isinstance(d["loc"], list) and d["msg"] for d in dicts)
    text = str(err)
    assert "2 problem(s)" in text
    assert "search_space.schedules" in text
    assert "search_space.batch_size" in text
    assert str(Problem((), "x")) == "<root>: x"


# --------------------------------------------------------------------------- fuzz

FUZZ_PATHS: list[tuple[str, ...]] = [
    ("name",),
    ("task",),
    ("objective",),
    ("objective", "metric"),
    ("objective", "direction"),
    ("budget",),
    ("budget", "n_trials"),
    ("budget", "max_epochs"),
    ("sampler",),
    ("sampler", "type"),
    ("sampler", "seed"),
    ("pruner",),
    ("pruner", "min_epochs"),
    ("pruner", "percentile"),
    ("search_space",),
    ("search_space", "schedules"),
    ("search_space", "warmup_epochs"),
    ("search_space", "learning_rate"),
    ("search_space", "learning_rate", "low"),
    ("search_space", "learning_rate", "log"),
    ("search_space", "batch_size"),
    ("search_space", "dropout"),
    ("search_space", "weight_init"),
    ("search_space", "weight_decay"),
    ("search_space", "optimizer"),
    ("search_space", "schedule_params"),
    ("search_space", "schedule_params", "step"),
    ("search_space", "schedule_params", "step", "gamma"),
    ("search_space", "schedule_params", "cyclic", "mode"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


@settings(max_examples=150, deadline=None, database=None)
@given(edits=st.lists(st.tuples(st.sampled_from(FUZZ_PATHS), json_values), min_size=1, max_size=3))
def test_any_json_input_gives_a_definition_or_a_definition_error(
    edits: list[tuple[tuple[str, ...], Any]],
) -> None:
    """Never a 500: arbitrary JSON values anywhere give a definition or a DefinitionError."""
    data: dict[str, Any] = {"name": "n", "task": "t"}
    for path, value in edits:
        _set_path(data, path, value)
    outcome: StudyDefinition | DefinitionError
    try:
        outcome = parse_definition(data)
    except DefinitionError as err:
        outcome = err
    if isinstance(outcome, DefinitionError):
        assert outcome.problems
    else:
        assert isinstance(outcome, StudyDefinition)


# --------------------------------------------------------------------------- defaults


def test_defaults_are_filled_in_from_name_and_task_alone() -> None:
    """The defaults DESIGN.md ("Study definition") shows, field by field."""
    d = parse_definition(BASE)
    assert (d.name, d.task) == ("digits-schedules", "digits-mlp")
    assert d.objective.metric == "val_accuracy"
    assert d.direction == "maximize"
    assert (d.budget.n_trials, d.budget.max_epochs) == (60, 20)
    assert d.sampler.type == "tpe"
    assert (d.pruner.type, d.pruner.min_epochs) == ("hyperband", 1)
    ss = d.search_space
    assert ss.schedules == ["step", "exponential", "cosine", "plateau", "cyclic", "warmup"]
    assert list(ss.schedules) == list(SCHEDULE_TYPES)
    assert d.warmup_bounds() == (0, 5)
    assert (ss.learning_rate.low, ss.learning_rate.high, ss.learning_rate.log) == (1e-4, 1.0, True)
    assert ss.batch_size == [32, 64, 128, 256]
    assert (ss.dropout.low, ss.dropout.high, ss.dropout.log) == (0.0, 0.5, False)
    assert ss.weight_init == [
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "orthogonal",
        "default",
    ]
    assert list(ss.weight_init) == list(WEIGHT_INITS)
    # Off by default (SearchSpace docstring), and no overrides.
    assert ss.optimizer is None
    assert ss.weight_decay is None
    assert ss.schedule_params == {}


def test_partial_sections_keep_the_other_defaults() -> None:
    d = parse_definition(defn(budget={"n_trials": 5}, search_space={"batch_size": [16]}))
    assert (d.budget.n_trials, d.budget.max_epochs) == (5, 20)
    assert d.search_space.batch_size == [16]
    assert d.search_space.learning_rate.log is True


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        ({"metric": "val_loss"}, "minimize"),
        ({"metric": "val_accuracy"}, "maximize"),
        ({}, "maximize"),
        ({"metric": "val_loss", "direction": "maximize"}, "maximize"),
        ({"metric": "val_accuracy", "direction": "minimize"}, "minimize"),
    ],
)
def test_direction_defaults_from_the_metric(objective: dict[str, str], expected: str) -> None:
    d = parse_definition(defn(objective=objective))
    assert d.direction == expected
    assert d.objective.resolved_direction == expected


@pytest.mark.parametrize(
    ("max_epochs", "bounds"), [(20, (0, 5)), (6, (0, 5)), (5, (0, 4)), (2, (0, 1)), (1, (0, 0))]
)
def test_default_warmup_range_fits_short_budgets(max_epochs: int, bounds: tuple[int, int]) -> None:
    d = parse_definition(defn(budget={"max_epochs": max_epochs}))
    assert d.warmup_bounds() == bounds
    assert bounds[1] < max_epochs


def test_warmup_shorter_than_max_epochs_is_accepted() -> None:
    d = parse_definition(defn(budget={"max_epochs": 5}, search_space={"warmup_epochs": 4}))
    assert d.warmup_bounds() == (4, 4)
    d = parse_definition(
        defn(budget={"max_epochs": 1}, search_space={"warmup_epochs": 0}, pruner={"min_epochs": 1})
    )
    assert d.warmup_bounds() == (0, 0)
