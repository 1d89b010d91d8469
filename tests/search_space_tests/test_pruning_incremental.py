"""ScheduleAwareHyperbandPruner's shortcuts decide exactly as Optuna's own Hyperband.

The pruner answers most ``should_prune`` calls without reading the storage
(:mod:`lrsearch.search_space._rung_floors`). Each test replays a randomized
study twice in lockstep, once under the pruner and once under a reference:
Optuna's plain ``HyperbandPruner`` behind the schedule rule (``may_judge``),
which is what the pruner did before it had shortcuts. Several trials run at
once and advance in random order (as with several workers), some fail, some
skip epochs or ``should_prune`` calls, values tie and some are NaN; every
decision of the two must be the same, and so must every trial's final state.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.pruners import HyperbandPruner
from optuna.trial import FrozenTrial, TrialState

from lrsearch.search_space._balanced import PRIORITY_ATTR, protect_priority_trials
from lrsearch.search_space._pruning import ScheduleAwareHyperbandPruner, may_judge
from lrsearch.search_space._rung_floors import RungFloors

SCHEDULES = ("cosine", "cyclic", "warmup", "constant")


class _Reference(HyperbandPruner):
    """Optuna's Hyperband behind the schedule rule, asked in full every time."""

    def __init__(self, default_warmup_epochs: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._default_warmup = default_warmup_epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if not may_judge(trial, self._default_warmup):
            return False
        return super().prune(study, trial)


def _params(rng: random.Random) -> dict[str, Any]:
    schedule = rng.choice(SCHEDULES)
    params: dict[str, Any] = {"schedule": schedule, "warmup_epochs": rng.choice([0, 0, 1, 2])}
    if schedule == "cyclic":
        params["cyclic.step_size"] = rng.randint(1, 3)
    if schedule == "warmup":
        params["warmup.ramp_epochs"] = rng.randint(0, 3)
    return params


def _ask(study: optuna.Study, params: dict[str, Any], priority: bool) -> optuna.Trial:
    study.enqueue_trial(params)
    trial = study.ask()
    trial.suggest_categorical("schedule", SCHEDULES)
    trial.suggest_int("warmup_epochs", 0, 2)
    if "cyclic.step_size" in params:
        trial.suggest_int("cyclic.step_size", 1, 3)
    if "warmup.ramp_epochs" in params:
        trial.suggest_int("warmup.ramp_epochs", 0, 3)
    if priority:
        study._storage.set_trial_system_attr(trial._trial_id, PRIORITY_ATTR, True)
    return trial


def _replay(seed: int, storages: tuple[str | None, str | None], protect: bool) -> dict[str, int]:
    """Run one randomized study under both pruners; assert every decision agrees."""
    rng = random.Random(seed)
    hyperband = {
        "min_resource": rng.choice([1, 1, 2]),
        "max_resource": rng.choice([9, 20, 27, 30]),
        "reduction_factor": rng.choice([2, 3, 3, 4]),
    }
    warmup = rng.choice([0, 1])
    pruners: list[optuna.pruners.BasePruner] = [
        ScheduleAwareHyperbandPruner(default_warmup_epochs=warmup, **hyperband),
        _Reference(default_warmup_epochs=warmup, **hyperband),
    ]
    if protect:
        pruners = [protect_priority_trials(p) for p in pruners]
    direction = rng.choice(["maximize", "minimize"])
    studies = [
        optuna.create_study(
            study_name=f"replay-{seed}",
            storage=storage,
            direction=direction,
            pruner=pruner,
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        for pruner, storage in zip(pruners, storages, strict=True)
    ]
    n_trials, concurrency = rng.randint(60, 120), rng.randint(1, 6)
    max_step = int(hyperband["max_resource"]) + rng.choice([-1, 0, 3])
    running: list[tuple[list[optuna.Trial], int]] = []  # the pair, the next step
    started = 0
    counts = {"asked": 0, "pruned": 0, "complete": 0, "failed": 0}
    while started < n_trials or running:
        if started < n_trials and len(running) < concurrency:
            params, priority = _params(rng), protect and rng.random() < 0.1
            running.append(([_ask(s, params, priority) for s in studies], 0))
            started += 1
            continue
        i = rng.randrange(len(running))
        pair, step = running[i]
        if rng.random() < 0.02:
            for study, trial in zip(studies, pair, strict=True):
                study.tell(trial, state=TrialState.FAIL)
            counts["failed"] += 1
            running.pop(i)
            continue
        value = round(rng.random(), 1) if rng.random() < 0.97 else math.nan
        for trial in pair:
            trial.report(value, step)
        if rng.random() < 0.9:  # a caller may skip should_prune at some epochs
            decisions = [trial.should_prune() for trial in pair]
            counts["asked"] += 1
            assert decisions[0] == decisions[1], (seed, pair[0].number, step, decisions)
            if decisions[0]:
                for study, trial in zip(studies, pair, strict=True):
                    study.tell(trial, state=TrialState.PRUNED)
                counts["pruned"] += 1
                running.pop(i)
                continue
        step += rng.choice([1, 1, 1, 1, 2])  # some epochs are not reported
        if step >= max_step:
            final = 0.5 if math.isnan(value) else value
            for study, trial in zip(studies, pair, strict=True):
                study.tell(trial, final)
            counts["complete"] += 1
            running.pop(i)
        else:
            running[i] = (pair, step)
    ours, theirs = (s.get_trials(deepcopy=False) for s in studies)
    assert [(t.state, t.system_attrs) for t in ours] == [(t.state, t.system_attrs) for t in theirs]
    return counts


@pytest.mark.parametrize("seed", range(12))
def test_decisions_match_optuna_hyperband_in_memory(seed: int) -> None:
    counts = _replay(seed, (None, None), protect=seed % 3 == 0)
    # The replay exercised what it claims to: decisions both ways, failures.
    assert counts["pruned"] > 0
    assert counts["complete"] > 0
    assert counts["asked"] > 2 * counts["pruned"]


def test_decisions_match_optuna_hyperband_on_sqlite(tmp_path: Path) -> None:
    # RDB storages behind Optuna's cache: the path the workers take.
    urls = (f"sqlite:///{tmp_path / 'ours.db'}", f"sqlite:///{tmp_path / 'theirs.db'}")
    counts = _replay(101, urls, protect=True)
    assert counts["pruned"] > 0
    assert counts["complete"] > 0


def test_seeds_cover_failures_and_several_brackets() -> None:
    failed = sum(_replay(seed, (None, None), protect=False)["failed"] for seed in range(4))
    assert failed > 0
    pruner = ScheduleAwareHyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3)
    study = optuna.create_study(study_name="brackets", pruner=pruner)
    for _ in range(60):
        trial = study.ask()
        trial.report(1.0, 0)
        trial.should_prune()
        study.tell(trial, 1.0)
    brackets = {pruner._get_bracket_id(study, t) for t in study.trials}
    assert len(brackets) == 4


def test_storage_is_read_only_at_promotion_steps() -> None:
    """Below the trial's next promotion step, no system attrs are read."""
    pruner = ScheduleAwareHyperbandPruner(min_resource=1, max_resource=20, reduction_factor=3)
    study = optuna.create_study(study_name="reads", pruner=pruner, direction="maximize")
    reads: list[int] = []
    original = study._storage.get_trial_system_attrs

    def counted(trial_id: int) -> dict[str, Any]:
        reads.append(trial_id)
        return original(trial_id)

    study._storage.get_trial_system_attrs = counted  # type: ignore[method-assign]
    judged: dict[int, list[int]] = {}
    for _ in range(30):
        trial = study.ask()
        judged[trial.number] = []
        for step in range(20):
            trial.report(float(step), step)
            before = len(reads)
            if trial.should_prune():
                break
            if len(reads) > before:
                judged[trial.number].append(step)
        study.tell(trial, 19.0)
    for number, steps in judged.items():
        if number == 0:
            continue  # the first call initialises Hyperband's brackets, reading as Optuna does
        bracket = pruner._get_bracket_id(study, study.trials[number])
        promotions = [3 ** (bracket + rung) for rung in range(3) if 3 ** (bracket + rung) < 20]
        assert steps == promotions, (number, steps)


def test_floors_are_forgotten_for_another_storage() -> None:
    pruner = ScheduleAwareHyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    floors = RungFloors()
    first = optuna.create_study(study_name="same", pruner=pruner)
    trial = first.ask()
    trial.report(0.5, 0)
    trial.should_prune()
    frozen = first.trials[0]
    floors.passed(pruner, first, frozen, 5)
    step = floors.promotion_step(pruner, first, frozen)
    assert step > 5
    second = optuna.create_study(study_name="same", pruner=pruner)
    second.ask()
    assert floors.promotion_step(pruner, second, second.trials[0]) < step


@pytest.mark.parametrize("multivariate", [False, True])
def test_tpe_samples_the_same_through_the_bracket_view(multivariate: bool) -> None:
    """Samplers see a trial's bracket through the pruner: the same proposals as Optuna's."""
    proposals = []
    for pruner in (ScheduleAwareHyperbandPruner(max_resource=9), _Reference(max_resource=9)):
        sampler = optuna.samplers.TPESampler(seed=3, n_startup_trials=5, multivariate=multivariate)
        study = optuna.create_study(study_name="tpe", pruner=pruner, sampler=sampler)
        seen = []
        for _ in range(40):
            trial = study.ask()
            x = trial.suggest_float("x", 1e-4, 1.0, log=True)
            k = trial.suggest_int("k", 1, 8)
            seen.append((x, k))
            for step in range(9):
                trial.report(abs(math.log10(x) + 2) + k / 10 - step / 20, step)
                if trial.should_prune():
                    study.tell(trial, state=TrialState.PRUNED)
                    break
            else:
                study.tell(trial, abs(math.log10(x) + 2) + k / 10)
        proposals.append(seen)
    assert proposals[0] == proposals[1]
