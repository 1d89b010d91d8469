"""Balanced schedule-type exploration: a first round per type, then no type starved.

Real Optuna studies (in memory) sample the default search space through
``make_sampler``/``sample_config``; the objective is a cheap function of the
sampled configuration, so a study of 40 trials takes a second or two.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import pytest

from lrsearch.search_space import (
    SCHEDULE_TYPES,
    BalancedScheduleSampler,
    DefinitionError,
    StudyDefinition,
    make_pruner,
    make_sampler,
    parse_definition,
    sample_config,
    unwrap_sampler,
)
from lrsearch.search_space._balanced import PRIORITY_ATTR, protect_priority_trials

BASE: dict[str, Any] = {"name": "balanced", "task": "digits-mlp"}
# Only cosine trials score well; step and plateau are always pruned after epoch 1,
# as a pruner might treat types that start slowly.
ALWAYS_PRUNED = ("step", "plateau")


def _definition(**sampler: Any) -> StudyDefinition:
    return parse_definition({**BASE, "sampler": {"type": "tpe", "seed": 3, **sampler}})


def _objective(definition: StudyDefinition) -> Any:
    def objective(trial: optuna.Trial) -> float:
        config = sample_config(trial, definition)
        schedule = trial.params["schedule"]
        trial.report(0.1, 0)
        trial.should_prune()  # lets a hyperband pruner set up its brackets
        if schedule in ALWAYS_PRUNED and trial.number % 4 != 0:
            raise optuna.TrialPruned
        bonus = 0.8 if schedule == "cosine" else 0.0
        return bonus + 0.1 * config.dropout

    return objective


def _run(definition: StudyDefinition, n_trials: int, enqueue: list[dict[str, Any]] = ()) -> Any:  # type: ignore[assignment]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(definition))
    for params in enqueue:
        study.enqueue_trial(params)
    study.optimize(_objective(definition), n_trials=n_trials)
    return study


def _completed(study: optuna.Study) -> Counter[str]:
    return Counter(
        t.params["schedule"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
    )


def test_the_first_round_tries_every_type_once() -> None:
    study = _run(_definition(), 6)
    assert sorted(t.params["schedule"] for t in study.trials) == sorted(SCHEDULE_TYPES)


def test_every_type_reaches_k_completed_trials_and_off_starves_some() -> None:
    on = _run(_definition(min_per_schedule=3, balance_every=2), 60)
    completed = _completed(on)
    assert all(completed[s] >= 3 for s in SCHEDULE_TYPES), completed
    # TPE learns cosine is best; the rest of the trials mostly go to it.
    assert completed["cosine"] == max(completed.values())
    # Without balancing the same study leaves an always-pruned type short.
    off = _completed(_run(_definition(balance_schedules=False), 60))
    assert any(off[s] < 3 for s in ALWAYS_PRUNED), off


def test_priority_trials_come_only_every_m_th_trial_number() -> None:
    study = _run(_definition(min_per_schedule=3, balance_every=3), 40)
    # Past the first round, the always-pruned types get trials only as priority
    # trials (TPE, left alone, avoids them): on trial numbers divisible by 3.
    late = [t for t in study.trials[6:] if t.params["schedule"] in ALWAYS_PRUNED]
    assert late
    assert sum(t.number % 3 == 0 for t in late) >= len(late) - 2


def test_a_later_start_leaves_the_first_trials_to_the_sampler_then_fills_every_type() -> None:
    definition = parse_definition(
        {
            **BASE,
            "budget": {"n_trials": 60, "max_epochs": 5},
            "sampler": {"type": "tpe", "seed": 3, "balance_start": 0.5, "balance_every": 1},
        }
    )
    sampler = make_sampler(definition)
    assert isinstance(sampler, BalancedScheduleSampler)
    assert sampler.start == 30
    study = _run(definition, 60)
    priority = [t.number for t in study.trials if t.system_attrs.get(PRIORITY_ATTR)]
    # No priority trial before trial 30 (the first round is not one), some after.
    assert priority
    assert min(priority) >= 30, priority
    completed = _completed(study)
    assert all(completed[s] >= 3 for s in SCHEDULE_TYPES), completed
    # From the start (the default), the always-pruned types get priority trials early.
    early = _run(_definition(min_per_schedule=3, balance_every=1), 30)
    assert any(t.system_attrs.get(PRIORITY_ATTR) for t in early.trials[:30])


def test_the_same_seed_replays_the_same_trials() -> None:
    first = _run(_definition(), 30)
    second = _run(_definition(), 30)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    other = _run(_definition(seed=4), 30)
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


def test_the_off_switch_and_other_samplers_keep_the_plain_sampler() -> None:
    assert type(make_sampler(_definition(balance_schedules=False))) is optuna.samplers.TPESampler
    random_default = parse_definition({**BASE, "sampler": {"type": "random"}})
    assert random_default.sampler.balance_schedules is False
    assert type(make_sampler(random_default)) is optuna.samplers.RandomSampler
    random_on = parse_definition({**BASE, "sampler": {"type": "random", "balance_schedules": True}})
    sampler = make_sampler(random_on)
    assert isinstance(sampler, BalancedScheduleSampler)
    assert type(unwrap_sampler(sampler)) is optuna.samplers.RandomSampler


def test_the_stored_definition_says_whether_it_balances() -> None:
    dumped = _definition().model_dump(mode="json")["sampler"]
    assert dumped == {
        "type": "tpe",
        "seed": 3,
        "balance_schedules": True,
        "min_per_schedule": 3,
        "balance_every": 3,
        "balance_start": 0.0,
        "protect_priority": True,
    }
    assert parse_definition({**BASE, "sampler": dumped}) == _definition()


def test_enqueued_trials_count_towards_their_type() -> None:
    fixed = {
        "schedule": "step",
        "learning_rate": 0.05,
        "batch_size": 64,
        "dropout": 0.2,
        "weight_init": "default",
        "warmup_epochs": 0,
        "step.step_size": 2,
        "step.gamma": 0.5,
    }
    study = _run(_definition(), 7, enqueue=[fixed, fixed])
    schedules = [t.params["schedule"] for t in study.trials]
    assert schedules[:2] == ["step", "step"]
    # The first round then covers the five types without a trial, not step again.
    assert sorted(schedules[2:]) == sorted(s for s in SCHEDULE_TYPES if s != "step")


def test_one_schedule_type_needs_no_balancing() -> None:
    definition = parse_definition(
        {**BASE, "sampler": {"seed": 1}, "search_space": {"schedules": ["cosine"]}}
    )
    assert type(make_sampler(definition)) is optuna.samplers.TPESampler
    study = _run(definition, 12)
    assert {t.params["schedule"] for t in study.trials} == {"cosine"}


def test_a_subset_of_types_is_balanced_over_that_subset() -> None:
    definition = parse_definition(
        {**BASE, "sampler": {"seed": 2}, "search_space": {"schedules": ["step", "cyclic"]}}
    )
    study = _run(definition, 2)
    assert sorted(t.params["schedule"] for t in study.trials) == ["cyclic", "step"]


@pytest.mark.parametrize(
    ("sampler", "paths"),
    [
        ({"balance_schedules": "yes"}, [("sampler", "balance_schedules")]),
        ({"min_per_schedule": -1}, [("sampler", "min_per_schedule")]),
        (
            {"min_per_schedule": 1.5, "balance_every": 0},
            [("sampler", "min_per_schedule"), ("sampler", "balance_every")],
        ),
        ({"balance_evry": 2}, [("sampler", "balance_evry")]),
        ({"balance_start": 1.5}, [("sampler", "balance_start")]),
    ],
)
def test_bad_balance_settings_are_reported_with_their_paths(
    sampler: dict[str, Any], paths: list[tuple[str, ...]]
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition({**BASE, "sampler": sampler})
    assert sorted(p.loc for p in caught.value.problems) == sorted(paths)


def test_hyperband_brackets_do_not_hide_trials_from_the_first_round() -> None:
    # Under hyperband a sampler sees the trial's bracket only (Optuna's
    # _BracketStudy); the first round must still count every trial.
    definition = _definition()
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler(definition),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=20),
    )
    study.optimize(_objective(definition), n_trials=6)
    assert sorted(t.params["schedule"] for t in study.trials) == sorted(SCHEDULE_TYPES)


def _run_pruned(definition: StudyDefinition, n_trials: int) -> optuna.Study:
    """A pruner that stops every trial at its first report, unless it is protected."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler(definition),
        pruner=protect_priority_trials(optuna.pruners.ThresholdPruner(lower=0.5))
        if definition.sampler.protect_priority
        else optuna.pruners.ThresholdPruner(lower=0.5),
    )

    def objective(trial: optuna.Trial) -> float:
        sample_config(trial, definition)
        trial.report(0.1, 0)
        if trial.should_prune():
            raise optuna.TrialPruned
        return 0.9

    study.optimize(objective, n_trials=n_trials)
    return study


def test_priority_trials_are_never_pruned_so_every_type_completes() -> None:
    study = _run_pruned(_definition(min_per_schedule=2, balance_every=2), 40)
    completed = _completed(study)
    assert all(completed[s] == 2 for s in SCHEDULE_TYPES), completed
    # Exactly the marked trials survived the pruner.
    survivors = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.system_attrs.get(PRIORITY_ATTR) for t in survivors)
    assert all(t.number % 2 == 0 for t in survivors)
    # Without protection the pruner stops them like any other trial.
    unprotected = _run_pruned(_definition(min_per_schedule=2, protect_priority=False), 20)
    assert _completed(unprotected) == Counter()


def test_make_pruner_protects_only_when_balancing() -> None:
    protected = make_pruner(_definition())
    assert type(protected).__name__ == "PriorityProtectedScheduleAwareHyperbandPruner"
    assert isinstance(protected, optuna.pruners.HyperbandPruner)
    for off in ({"balance_schedules": False}, {"protect_priority": False}):
        pruner = make_pruner(_definition(**off))
        assert type(pruner).__name__ == "ScheduleAwareHyperbandPruner", off
    median = parse_definition({**BASE, "pruner": {"type": "median"}})
    assert type(make_pruner(median)).__name__ == "PriorityProtectedScheduleAwarePruner"
    none = parse_definition({**BASE, "pruner": {"type": "none"}})
    assert type(make_pruner(none)) is optuna.pruners.NopPruner


def test_once_every_type_has_its_completed_trials_the_history_is_not_counted_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lrsearch.search_space import _balanced

    counted: list[int] = []
    real = _balanced.schedule_counts

    def counting(trials: Any, choices: Any, exclude: int) -> Any:
        counts = real(trials, choices, exclude)
        counted.append(min(c[0] for c in counts.values()))
        return counts

    monkeypatch.setattr(_balanced, "schedule_counts", counting)
    study = _run(_definition(min_per_schedule=2, balance_every=1), 50)
    completed = _completed(study)
    assert all(completed[s] >= 2 for s in SCHEDULE_TYPES), completed
    # Counted until the fewest-completed type reached 2, then never again.
    assert counted[-1] >= 2
    assert all(least < 2 for least in counted[:-1])
    assert len(counted) < 50
