"""Schedule-aware pruning on real Optuna studies (in memory and SQLite).

Intermediate values are written by hand: reference trials learn at a steady
rate, the trial under test ramps its learning rate first (slow by design) or
cycles it, and the question is only whether and when a pruner stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.pruners import _filter_study
from optuna.trial import TrialState

from lrsearch.search_space import SCHEDULE_TYPES, make_pruner, parse_definition
from lrsearch.search_space._pruning import (
    ScheduleAwareHyperbandPruner,
    ScheduleAwarePruner,
    protected_until,
)

REFERENCE_VALUES = (0.5, 0.6, 0.7, 0.8, 0.9)  # steady val_accuracy of 5 finished trials


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "memory" else f"sqlite:///{tmp_path / 'pruning.db'}"


def _study(pruner: optuna.pruners.BasePruner, storage: str | None = None) -> optuna.Study:
    return optuna.create_study(
        study_name="schedule-pruning",
        storage=storage,
        direction="maximize",
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def _ask(study: optuna.Study, schedule: str, warmup_epochs: int, **own: Any) -> optuna.Trial:
    """A trial with exactly these parameters, named as lrsearch names them."""
    params = {"schedule": schedule, "warmup_epochs": warmup_epochs}
    params.update({f"{schedule}.{k}": v for k, v in own.items()})
    study.enqueue_trial(params)
    trial = study.ask()
    trial.suggest_categorical("schedule", list(SCHEDULE_TYPES))
    trial.suggest_int("warmup_epochs", 0, 20)
    for key, value in own.items():
        if isinstance(value, str):
            trial.suggest_categorical(f"{schedule}.{key}", [value])
        else:
            trial.suggest_int(f"{schedule}.{key}", 1, 20)
    return trial


def _finish_references(study: optuna.Study, epochs: int = 10) -> None:
    for value in REFERENCE_VALUES:
        trial = _ask(study, "step", 0, step_size=3)
        for epoch in range(epochs):
            trial.report(value, epoch)
        study.tell(trial, value)


def _first_prune(trial: optuna.Trial, values: list[float]) -> int | None:
    """Report ``values`` epoch by epoch; the epoch at which the pruner said stop."""
    for epoch, value in enumerate(values):
        trial.report(value, epoch)
        if trial.should_prune():
            return epoch
    return None


def _median() -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


# ---------------------------------------------------------------- warm-up


def test_plain_median_kills_a_warm_up_trial_during_its_ramp(storage: str | None) -> None:
    # The fault the wrapper fixes: at epoch 0 of a 3-epoch ramp the LR is a third of
    # its target, the accuracy is low by construction, and the median pruner stops it.
    study = _study(_median(), storage)
    _finish_references(study)
    trial = _ask(study, "step", 3, step_size=3)
    assert _first_prune(trial, [0.1, 0.2, 0.3, 0.95, 0.95]) == 0


def test_warm_up_trial_survives_its_ramp_and_is_judged_after(storage: str | None) -> None:
    study = _study(ScheduleAwarePruner(_median()), storage)
    _finish_references(study)
    good = _ask(study, "step", 3, step_size=3)
    assert _first_prune(good, [0.1, 0.2, 0.3, 0.95, 0.95, 0.95]) is None
    study.tell(good, 0.95)
    # Judged from its first epoch at full LR on: a trial still bad there is pruned then.
    bad = _ask(study, "step", 3, step_size=3)
    assert _first_prune(bad, [0.1, 0.2, 0.3, 0.3, 0.3]) == 3


def test_warmup_schedule_is_protected_for_its_own_ramp() -> None:
    study = _study(ScheduleAwarePruner(_median()))
    _finish_references(study)
    # The warmup schedule is never prefixed: its 3 ramp epochs (steps 0..2) are protected.
    study.enqueue_trial({"schedule": "warmup", "warmup.ramp_epochs": 3})
    trial = study.ask()
    trial.suggest_categorical("schedule", list(SCHEDULE_TYPES))
    trial.suggest_int("warmup.ramp_epochs", 1, 10)
    assert _first_prune(trial, [0.1] * 6) == 3


def _fixed_warmup_first_prune(schedule_aware: bool) -> int | None:
    # A definition that fixes warmup_epochs stores no such parameter on its trials.
    definition = parse_definition(
        {
            "name": "fixed-warmup",
            "task": "digits-mlp",
            "budget": {"max_epochs": 20},
            "pruner": {"type": "median", "min_epochs": 1, "schedule_aware": schedule_aware},
            "search_space": {"warmup_epochs": 7},
        }
    )
    assert protected_until({"schedule": "step"}, definition.warmup_bounds()[0]) == 7
    study = _study(make_pruner(definition))
    _finish_references(study, epochs=20)
    study.enqueue_trial({"schedule": "step"})
    trial = study.ask()
    trial.suggest_categorical("schedule", list(SCHEDULE_TYPES))
    return _first_prune(trial, [0.1] * 20)


def test_fixed_warm_up_of_the_definition_is_protected_too() -> None:
    plain = _fixed_warmup_first_prune(schedule_aware=False)
    assert plain is not None
    assert plain < 7, "the study's own median warm-up ends before 7"
    assert _fixed_warmup_first_prune(schedule_aware=True) == 7


# ---------------------------------------------------------------- cyclic


@pytest.mark.parametrize(("warmup", "step_size", "judged_at"), [(0, 2, 3), (1, 2, 4), (0, 1, 1)])
def test_cyclic_trial_is_judged_only_at_cycle_ends(
    warmup: int, step_size: int, judged_at: int
) -> None:
    study = _study(ScheduleAwarePruner(_median()))
    _finish_references(study)
    trial = _ask(study, "cyclic", warmup, step_size=step_size, mode="triangular")
    # Bad at every epoch: the only question is when the pruner is allowed to say so.
    assert _first_prune(trial, [0.1] * 10) == judged_at


def test_cyclic_trial_is_not_pruned_at_its_peak_mid_cycle() -> None:
    study = _study(ScheduleAwarePruner(_median()))
    _finish_references(study)
    trial = _ask(study, "cyclic", 0, step_size=2, mode="triangular")
    # Epochs 1-2 are the high-LR half of the cycle: the accuracy dips, then recovers.
    assert _first_prune(trial, [0.8, 0.2, 0.2, 0.85, 0.9, 0.3, 0.3, 0.9]) is None


# ---------------------------------------------------------------- hyperband


def _run(study: optuna.Study, schedules: list[tuple[str, int, dict[str, Any]]]) -> list[int | None]:
    """Steadily worse trials, each trained 9 epochs unless pruned; first prune epochs."""
    out = []
    for i, (schedule, warmup, own) in enumerate(schedules):
        trial = _ask(study, schedule, warmup, **own)
        values = [(e + 1) / 9 * (1.0 - 0.05 * i) for e in range(9)]
        pruned_at = _first_prune(trial, values)
        out.append(pruned_at)
        if pruned_at is None:
            study.tell(trial, values[-1])
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return out


def _hyperband(aware: bool) -> optuna.pruners.HyperbandPruner:
    if aware:
        return ScheduleAwareHyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)


def test_wrapped_hyperband_prunes_like_hyperband_when_no_rule_applies(
    storage: str | None, tmp_path: Path
) -> None:
    plan: list[tuple[str, int, dict[str, Any]]] = [("step", 0, {"step_size": 3})] * 16
    other = None if storage is None else f"sqlite:///{tmp_path / 'plain.db'}"
    plain = _run(_study(_hyperband(False), other), plan)
    aware = _run(_study(_hyperband(True), storage), plan)
    assert aware == plain
    assert any(p is not None for p in aware), "steadily worse trials must get pruned"


def test_wrapped_hyperband_keeps_its_brackets_for_the_sampler() -> None:
    study = _study(_hyperband(True))
    _run(study, [("step", 0, {"step_size": 3})] * 6)
    pruner = study.pruner
    assert isinstance(pruner, ScheduleAwareHyperbandPruner)
    trial = study.trials[-1]
    # Optuna hands the sampler only the trial's bracket, found by isinstance(Hyperband).
    bracket_study = _filter_study(study, trial)
    assert type(bracket_study).__name__ == "_BracketStudy"
    bracket = pruner._get_bracket_id(study, trial)
    members = bracket_study.get_trials(deepcopy=False)
    assert trial.number in {t.number for t in members}
    assert all(pruner._get_bracket_id(study, t) == bracket for t in members)


def test_wrapped_hyperband_spares_a_warm_up_trial_the_plain_one_kills() -> None:
    plan: list[tuple[str, int, dict[str, Any]]] = [("step", 0, {"step_size": 3})] * 12
    plan.append(("step", 4, {"step_size": 3}))
    plain = _run(_study(_hyperband(False)), plan)
    aware = _run(_study(_hyperband(True)), plan)
    assert plain[-1] is not None
    assert plain[-1] < 4, "the plain pruner kills it mid-ramp"
    assert aware[-1] is None or aware[-1] >= 4


# ---------------------------------------------------------------- wiring


@pytest.mark.parametrize("kind", ["median", "percentile", "successive_halving"])
def test_make_pruner_wraps_by_default_and_not_when_off(kind: str) -> None:
    # Balancing off: its protection of priority trials is a subclass (test_balanced.py).
    base = {"name": "wired", "task": "digits-mlp", "sampler": {"balance_schedules": False}}
    on = make_pruner(parse_definition({**base, "pruner": {"type": kind}}))
    assert isinstance(on, ScheduleAwarePruner)
    off = make_pruner(parse_definition({**base, "pruner": {"type": kind, "schedule_aware": False}}))
    assert not isinstance(off, ScheduleAwarePruner)
    assert type(on.pruner) is type(off)


def test_make_pruner_hyperband_is_schedule_aware_unless_off() -> None:
    base = {"name": "wired", "task": "digits-mlp", "sampler": {"balance_schedules": False}}
    assert isinstance(make_pruner(parse_definition(base)), ScheduleAwareHyperbandPruner)
    off = make_pruner(parse_definition({**base, "pruner": {"schedule_aware": False}}))
    assert type(off) is optuna.pruners.HyperbandPruner


def test_hyperband_cannot_be_wrapped_by_the_generic_wrapper() -> None:
    with pytest.raises(TypeError, match="ScheduleAwareHyperbandPruner"):
        ScheduleAwarePruner(_hyperband(False))
