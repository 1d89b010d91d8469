"""Every number in a study definition is bounded and finite, nested ranges included.

Before these bounds a definition could carry values that validated here and
then broke further down: a sampler seed numpy refuses (500 at creation), an
integer beyond the storage's 32-bit columns, or a NaN inside
``schedule_params`` that was accepted and stored as ``null``.
"""

from __future__ import annotations

from typing import Any

import pytest

from lrsearch.search_space import (
    SCHEDULE_TYPES,
    DefinitionError,
    make_sampler,
    parse_definition,
)

BASE: dict[str, Any] = {"name": "bounds", "task": "synthetic"}
SS = "search_space"
SP = (SS, "schedule_params")
NAN = float("nan")
INF = float("inf")


def defn(**sections: Any) -> dict[str, Any]:
    return {**BASE, **sections}


def space(**fields: Any) -> dict[str, Any]:
    return defn(search_space=fields)


def override(schedule: str, param: str, **rng: Any) -> dict[str, Any]:
    return space(schedule_params={schedule: {param: rng}})


REJECTED: list[Any] = [
    ("seed-negative", defn(sampler={"seed": -1}), [("sampler", "seed")]),
    ("seed-2**32", defn(sampler={"seed": 2**32}), [("sampler", "seed")]),
    ("seed-2**64", defn(sampler={"seed": 2**64}), [("sampler", "seed")]),
    ("n-trials-int32", defn(budget={"n_trials": 2**31}), [("budget", "n_trials")]),
    ("max-epochs-huge", defn(budget={"max_epochs": 10_001}), [("budget", "max_epochs")]),
    ("max-retries-huge", defn(budget={"max_retries": 2**40}), [("budget", "max_retries")]),
    ("min-epochs-int32", defn(pruner={"min_epochs": 2**31}), [("pruner", "min_epochs")]),
    ("reduction-huge", defn(pruner={"reduction_factor": 2**63}), [("pruner", "reduction_factor")]),
    ("percentile-nan", defn(pruner={"percentile": NAN}), [("pruner", "percentile")]),
    ("percentile-inf", defn(pruner={"percentile": INF}), [("pruner", "percentile")]),
    ("batch-int32", space(batch_size=[32, 2**31]), [(SS, "batch_size")]),
    ("batch-too-many", space(batch_size=list(range(1, 66))), [(SS, "batch_size")]),
    ("warmup-fixed-huge", space(warmup_epochs=2**40), [(SS, "warmup_epochs")]),
    (
        "warmup-range-int32",
        space(warmup_epochs={"low": 0, "high": 2**31}),
        [(SS, "warmup_epochs", "high")],
    ),
    ("lr-high-huge", space(learning_rate={"low": 0.1, "high": 1e300}), [(SS, "learning_rate")]),
    ("lr-low-nan", space(learning_rate={"low": NAN, "high": 1.0}), [(SS, "learning_rate", "low")]),
    ("dropout-high-nan", space(dropout={"low": 0.0, "high": NAN}), [(SS, "dropout", "high")]),
    (
        "weight-decay-huge",
        space(weight_decay={"low": 0.0, "high": 1e6}),
        [(SS, "weight_decay")],
    ),
    (
        "weight-decay-inf",
        space(weight_decay={"low": 0.0, "high": INF}),
        [(SS, "weight_decay", "high")],
    ),
    (
        "nested-low-nan",
        override("step", "gamma", low=NAN, high=0.5),
        [(*SP, "step", "gamma", "low")],
    ),
    (
        "nested-high-inf",
        override("exponential", "gamma", low=0.5, high=INF),
        [(*SP, "exponential", "gamma", "high")],
    ),
    (
        "nested-low-minus-inf",
        override("cosine", "eta_min", low=-INF, high=0.5),
        [(*SP, "cosine", "eta_min", "low")],
    ),
    (
        "nested-int-huge",
        override("step", "step_size", low=1, high=2**31),
        [(*SP, "step", "step_size", "high")],
    ),
    (
        "nested-patience-huge",
        override("plateau", "patience", low=0, high=1e12),
        [(*SP, "plateau", "patience", "high")],
    ),
    (
        "nested-ramp-huge",
        override("warmup", "ramp_epochs", low=1, high=10_001),
        [(*SP, "warmup", "ramp_epochs", "high")],
    ),
    (
        "nested-max-lr-huge",
        override("cyclic", "max_lr", low=2, high=1e9),
        [(*SP, "cyclic", "max_lr", "high")],
    ),
    (
        "nested-too-many-choices",
        override("cyclic", "mode", choices=["triangular"] * 17),
        [(*SP, "cyclic", "mode", "choices")],
    ),
    (
        "every-problem-at-once",
        defn(
            sampler={"seed": -1},
            budget={"n_trials": 2**31},
            search_space={"schedule_params": {"step": {"gamma": {"low": NAN, "high": 0.5}}}},
        ),
        [("budget", "n_trials"), ("sampler", "seed"), (*SP, "step", "gamma", "low")],
    ),
]


@pytest.mark.parametrize(("data", "locs"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_out_of_bounds_and_non_finite_numbers_are_rejected_with_their_path(
    data: dict[str, Any], locs: list[tuple[str | int, ...]]
) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition(data)
    assert [p.loc for p in info.value.problems] == locs


ACCEPTED: list[Any] = [
    ("seed-zero", defn(sampler={"seed": 0})),
    ("seed-max", defn(sampler={"seed": 2**32 - 1})),
    ("budget-max", defn(budget={"n_trials": 100_000, "max_epochs": 10_000, "max_retries": 10})),
    ("batch-max", space(batch_size=[1, 1 << 20])),
    ("lr-max", space(learning_rate={"low": 1.0, "high": 100.0})),
    ("step-size-max", override("step", "step_size", low=1, high=10_000)),
    ("max-lr-max", override("cyclic", "max_lr", low=1.0, high=1000.0)),
]


@pytest.mark.parametrize("data", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_numbers_at_the_bounds_are_accepted(data: dict[str, Any]) -> None:
    parse_definition(data)


@pytest.mark.parametrize("kind", ["tpe", "random", "cmaes", "gp", "qmc"])
@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_every_sampler_takes_every_accepted_seed(kind: str, seed: int) -> None:
    definition = parse_definition(
        defn(sampler={"type": kind, "seed": seed}, search_space={"schedules": list(SCHEDULE_TYPES)})
    )
    assert make_sampler(definition) is not None
