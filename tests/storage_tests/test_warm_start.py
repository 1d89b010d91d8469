"""Warm starts on real SQLite and PostgreSQL: a new study's first trials are earlier winners.

Source studies are played through the real path (enqueue, claim, sample, finish)
with configurations the test chooses, so every expected winner is known.
"""

from __future__ import annotations

import uuid
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import DefinitionError, parse_definition, sample_config
from lrsearch.storage import Backend, StudyRecord

SPACE: dict[str, Any] = {
    "schedules": ["step", "cosine"],
    "warmup_epochs": 0,
    "learning_rate": {"low": 1e-4, "high": 1.0, "log": True},
    "batch_size": [32, 64, 128],
    "weight_init": ["default", "orthogonal"],
}


def _name() -> str:
    return f"ws-{uuid.uuid4().hex[:12]}"


def _step(lr: float, batch: int = 64, gamma: float = 0.5) -> dict[str, Any]:
    return {
        "schedule": "step",
        "learning_rate": lr,
        "batch_size": batch,
        "dropout": 0.1,
        "weight_init": "default",
        "step.step_size": 2,
        "step.gamma": gamma,
    }


def _cosine(lr: float, batch: int = 64) -> dict[str, Any]:
    return {
        "schedule": "cosine",
        "learning_rate": lr,
        "batch_size": batch,
        "dropout": 0.2,
        "weight_init": "orthogonal",
        "cosine.eta_min": 0.01,
    }


def _definition(name: str, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": name,
        "task": "synthetic",
        "budget": {"n_trials": 20, "max_epochs": 3},
        "sampler": {"type": "random", "seed": 5},
        "pruner": {"type": "none"},
        "search_space": SPACE,
    }
    raw.update(overrides)
    return raw


def _source(
    backend: Backend, runs: list[tuple[dict[str, Any], float]], *, tenant: str = "default"
) -> StudyRecord:
    """A finished study whose COMPLETE trials have exactly these params and values."""
    record = storage.create_study(backend, parse_definition(_definition(_name())), tenant=tenant)
    study = storage.load_optuna_study(backend, record)
    for params, value in runs:
        storage.enqueue_fixed(backend, study, record, params)
        trial = storage.claim_trial(backend, study, worker="w:1", device="cpu")
        assert trial is not None
        sample_config(trial, record.definition)
        storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=value)
    return record


def _first_trials(backend: Backend, record: StudyRecord) -> list[optuna.trial.FrozenTrial]:
    study = storage.load_optuna_study(backend, record)
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def _claimed_params(backend: Backend, record: StudyRecord, n: int) -> list[dict[str, Any]]:
    """What the first ``n`` claims of the study train, as a worker would sample them."""
    study = storage.load_optuna_study(backend, record)
    out = []
    for _ in range(n):
        trial = storage.claim_trial(backend, study, worker="w:2", device="cpu")
        assert trial is not None
        out.append(sample_config(trial, record.definition).to_params())
    return out


def test_second_study_starts_with_the_first_studys_winner_per_schedule(
    backend: Backend,
) -> None:
    first = _source(
        backend,
        [
            (_step(0.01), 0.80),
            (_step(0.1, gamma=0.3), 0.91),  # best step
            (_cosine(0.05), 0.85),  # best cosine
            (_cosine(0.5, batch=128), 0.70),
        ],
    )
    raw = _definition(_name(), warm_start={"from": [first.name], "top_k": 1})
    second = storage.create_study(backend, parse_definition(raw))

    claimed = _claimed_params(backend, second, 2)
    # Best first: the step winner (0.91), then the cosine winner (0.85).
    for got, want in zip(claimed, [_step(0.1, gamma=0.3), _cosine(0.05)], strict=True):
        assert {k: got[k] for k in want} == pytest.approx(want)

    report = storage.load_optuna_study(backend, second).user_attrs["warm_start"]
    assert [(e["study"], e["value"]) for e in report["enqueued"]] == [
        (first.name, 0.91),
        (first.name, 0.85),
    ]
    assert report["skipped"] == []
    # Enqueued trials count toward the budget like any other.
    with backend.engine.connect() as conn:
        assert storage.budget_counts(conn, second).remaining == 20 - 2


def test_top_k_takes_that_many_per_schedule_across_sources(backend: Backend) -> None:
    a = _source(backend, [(_step(0.01), 0.5), (_step(0.02), 0.6), (_cosine(0.05), 0.4)])
    b = _source(backend, [(_step(0.03), 0.9), (_cosine(0.06), 0.3)])
    raw = _definition(_name(), warm_start={"from": [a.name, b.name], "top_k": 2})
    second = storage.create_study(backend, parse_definition(raw))
    values = [t.user_attrs.get("enqueued") for t in _first_trials(backend, second)]
    assert values == [True] * 4
    report = storage.load_optuna_study(backend, second).user_attrs["warm_start"]
    # step: 0.9 (b) and 0.6 (a); cosine: 0.4 (a) and 0.3 (b); best first.
    assert [e["value"] for e in report["enqueued"]] == [0.9, 0.6, 0.4, 0.3]


def test_out_of_space_configs_are_clipped_or_skipped_with_the_reason(backend: Backend) -> None:
    first = _source(
        backend,
        [
            (_step(0.5, gamma=0.3), 0.9),  # lr above the new high: clipped
            (_cosine(0.05, batch=128), 0.8),  # batch 128 is not offered: skipped
        ],
    )
    space = {**SPACE, "learning_rate": {"low": 1e-4, "high": 0.1, "log": True}}
    space["batch_size"] = [32, 64]
    raw = _definition(_name(), warm_start={"from": [first.name]}, search_space=space)
    second = storage.create_study(backend, parse_definition(raw))
    report = storage.load_optuna_study(backend, second).user_attrs["warm_start"]

    [enqueued] = report["enqueued"]
    assert enqueued["params"]["learning_rate"] == pytest.approx(0.1)
    assert "learning_rate: 0.5 clipped to 0.1" in enqueued["notes"]
    [skipped] = report["skipped"]
    assert skipped["schedule"] == "cosine"
    assert skipped["reason"] == "batch_size 128 is not one of [32, 64]"
    [claimed] = _claimed_params(backend, second, 1)
    assert claimed["learning_rate"] == pytest.approx(0.1)


def test_a_schedule_the_new_space_lacks_is_skipped(backend: Backend) -> None:
    first = _source(backend, [(_step(0.1), 0.9), (_cosine(0.05), 0.8)])
    space = {**SPACE, "schedules": ["cosine"]}
    raw = _definition(_name(), warm_start={"from": [first.name]}, search_space=space)
    second = storage.create_study(backend, parse_definition(raw))
    report = storage.load_optuna_study(backend, second).user_attrs["warm_start"]
    assert [e["params"]["schedule"] for e in report["enqueued"]] == ["cosine"]
    assert report["skipped"][0]["reason"] == "schedule 'step' is not in this study's schedules"


def test_another_tenants_studies_are_never_used(backend: Backend) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    theirs = _source(backend, [(_step(0.3), 0.99)], tenant=tenant)
    ours = _source(backend, [(_step(0.01), 0.5)])

    # By name: their study is as unknown to us as a name that does not exist.
    raw = _definition(_name(), warm_start={"from": [theirs.name, ours.name]})
    second = storage.create_study(backend, parse_definition(raw))
    report = storage.load_optuna_study(backend, second).user_attrs["warm_start"]
    assert [e["study"] for e in report["enqueued"]] == [ours.name]
    assert report["skipped"] == [{"study": theirs.name, "reason": "no study of that name"}]

    # same_task: every study of the task in *our* tenant, none of theirs.
    raw = _definition(_name(), warm_start={"from": "same_task", "top_k": 10})
    third = storage.create_study(backend, parse_definition(raw), tenant=tenant + "-other")
    report = storage.load_optuna_study(backend, third).user_attrs["warm_start"]
    assert report["enqueued"] == []
    raw = _definition(_name(), warm_start={"from": "same_task", "top_k": 10})
    fourth = storage.create_study(backend, parse_definition(raw), tenant=tenant)
    report = storage.load_optuna_study(backend, fourth).user_attrs["warm_start"]
    assert [e["study"] for e in report["enqueued"]] == [theirs.name]


def test_a_source_with_another_objective_is_skipped(backend: Backend) -> None:
    first = _source(backend, [(_step(0.1), 0.9)])
    raw = _definition(
        _name(),
        objective={"metric": "val_loss", "direction": "minimize"},
        warm_start={"from": [first.name]},
    )
    second = storage.create_study(backend, parse_definition(raw))
    report = storage.load_optuna_study(backend, second).user_attrs["warm_start"]
    assert report["enqueued"] == []
    assert "val_accuracy (maximize)" in report["skipped"][0]["reason"]


def test_an_auto_study_leaves_the_learning_rate_to_the_range_test(backend: Backend) -> None:
    first = _source(backend, [(_step(0.1), 0.9)])
    space = {**SPACE, "learning_rate": "auto"}
    raw = _definition(_name(), warm_start={"from": [first.name]}, search_space=space)
    second = storage.create_study(backend, parse_definition(raw))
    report = storage.load_optuna_study(backend, second).user_attrs["warm_start"]
    [enqueued] = report["enqueued"]
    assert "learning_rate" not in enqueued["params"]
    assert enqueued["params"]["step.gamma"] == pytest.approx(0.5)


def test_warm_start_definition_errors_are_listed() -> None:
    raw = _definition("me", warm_start={"from": ["me", "x", "x"], "top_k": 0})
    with pytest.raises(DefinitionError) as caught:
        parse_definition(raw)
    msgs = {(p.loc, p.msg) for p in caught.value.problems}
    assert (("warm_start", "from"), "duplicate entries: ['x']") in msgs
    assert any(loc == ("warm_start", "top_k") for loc, _ in msgs)
    raw = _definition("me", warm_start={"from": ["me"]})
    with pytest.raises(DefinitionError, match="cannot warm-start from itself"):
        parse_definition(raw)
    with pytest.raises(DefinitionError, match="or 'same_task'"):
        parse_definition(_definition("me", warm_start={"from": "same-task"}))
