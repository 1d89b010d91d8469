"""One read of the study's trials per trial for the sampler, under Hyperband too.

Optuna hands the sampler a fresh Hyperband bracket view for every ``suggest``;
lrsearch's view shares the study's per-trial cache, and a claim resets it, so
TPE reads the history once per trial and still sees every trial finished
before the claim.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import parse_definition, sample_config


def _definition(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": "synthetic",
        "budget": {"n_trials": 100, "max_epochs": 4},
        "sampler": {"type": "tpe", "seed": 3},
        "pruner": {"type": "hyperband", "min_epochs": 1},
        "confirm": {"top_k": 0, "seeds": 0},
    }


def _run_one(backend: storage.Backend, study: optuna.Study, spec: Any, value: float) -> int:
    trial = storage.claim_trial(backend, study, worker="w")
    assert trial is not None
    sample_config(trial, spec)
    for epoch in range(4):
        trial.report(value, epoch)
    storage.finish_trial(backend, study, trial, state=TrialState.COMPLETE, value=value)
    return trial.number


@pytest.fixture
def past_startup(
    sqlite_url: str, study_name: str
) -> Iterator[tuple[storage.Backend, Any, optuna.Study]]:
    """A TPE + Hyperband study past TPE's 10 random start-up trials and the first round per type."""
    spec = parse_definition(_definition(study_name))
    backend = storage.open_backend(sqlite_url)
    try:
        record = storage.create_study(backend, spec)
        study = storage.load_optuna_study(backend, record)
        for i in range(14):
            _run_one(backend, study, spec, 0.5 + 0.01 * i)
        yield backend, spec, study
    finally:
        backend.dispose()


def _counting(monkeypatch: pytest.MonkeyPatch, optuna_storage: Any) -> list[int]:
    calls: list[int] = []
    real = optuna_storage.get_all_trials

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna_storage, "get_all_trials", counted)
    return calls


def test_tpe_under_hyperband_reads_the_trials_once_per_trial(
    past_startup: tuple[storage.Backend, Any, optuna.Study], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, spec, study = past_startup
    calls = _counting(monkeypatch, study._storage)
    trial = storage.claim_trial(backend, study, worker="w")
    assert trial is not None
    config = sample_config(trial, spec)
    # Schedule, learning rate, optimizer, batch size, dropout, init, the
    # schedule's own parameters...: many suggests, one read.
    assert len(trial.params) >= 6
    assert config.schedule.type in spec.search_space.schedules
    assert len(calls) == 1
    # Each bracket view Optuna builds for a suggest shares the study's cache.
    view = optuna.pruners._filter_study(study, study._storage.get_trial(trial._trial_id))
    assert view is not study
    assert view._thread_local is study._thread_local


def test_a_claim_resets_the_cache_so_the_next_trial_sees_every_finished_trial(
    past_startup: tuple[storage.Backend, Any, optuna.Study], study_name: str
) -> None:
    backend, spec, mine = past_startup
    other = storage.load_optuna_study(backend, storage.get_study(backend, study_name), seed_salt=1)
    # This worker's cache holds the study as of its last trial.
    seen = {t.number for t in mine._get_trials(deepcopy=False, use_cache=True)}
    # Another worker finishes a trial meanwhile.
    theirs = _run_one(backend, other, spec, 0.99)
    assert theirs not in seen
    trial = storage.claim_trial(backend, mine, worker="w")
    assert trial is not None
    sample_config(trial, spec)
    cached = {t.number: t.state for t in mine._get_trials(deepcopy=False, use_cache=True)}
    assert cached[theirs] == TrialState.COMPLETE
    assert cached[trial.number] == TrialState.RUNNING


def test_tpe_splits_the_snapshot_once_per_trial_and_only_for_lrsearch_views(
    past_startup: tuple[storage.Backend, Any, optuna.Study],
) -> None:
    from optuna.pruners import HyperbandPruner
    from optuna.samplers._tpe import sampler as tpe

    from lrsearch.search_space import _tpe_split

    backend, spec, study = past_startup
    trial = storage.claim_trial(backend, study, worker="w")
    assert trial is not None
    sample_config(trial, spec)
    view = optuna.pruners._filter_study(study, study._storage.get_trial(trial._trial_id))
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    trials = list(view._get_trials(deepcopy=False, states=states))
    first = tpe._split_trials(view, trials, 3)
    # The same snapshot, trials and n_below: the same answer, not recomputed.
    assert tpe._split_trials(view, list(trials), 3) is first
    _tpe_split.clear()
    fresh = tpe._split_trials(view, trials, 3)
    assert fresh is not first
    assert [[t.number for t in part] for part in fresh] == [
        [t.number for t in part] for part in first
    ]
    assert len(fresh[0]) == 3
    # Other trials or another n_below: computed again.
    assert tpe._split_trials(view, trials[1:], 3) is not fresh
    assert len(tpe._split_trials(view, trials, 4)[0]) == 4
    # Optuna's own bracket view is never memoised.
    pruner = HyperbandPruner(min_resource=1, max_resource=4)
    pruner._try_initialization(study)
    plain = pruner._create_bracket_study(study, 0)
    once = tpe._split_trials(plain, trials, 3)
    assert tpe._split_trials(plain, trials, 3) is not once


def _random_trials(rng: random.Random, n: int) -> list[optuna.trial.FrozenTrial]:
    """Complete, pruned and running trials with ties, infinities, NaN steps and infeasibility."""
    trials = []
    for number in range(n):
        state = rng.choice(
            [TrialState.COMPLETE] * 3 + [TrialState.PRUNED] * 5 + [TrialState.RUNNING]
        )
        steps = rng.randint(0, 4)
        curve = {
            s: rng.choice([0.1, 0.5, 0.9, math.inf, -math.inf, math.nan]) for s in range(steps)
        }
        system_attrs = {}
        if rng.random() < 0.1 and state != TrialState.RUNNING:
            system_attrs["constraints"] = [rng.choice([0.0, 1.0, 2.0])]
        value = rng.choice([0.2, 0.5, 0.5, 0.8, math.inf]) if state == TrialState.COMPLETE else None
        trial = optuna.trial.create_trial(
            state=state,
            value=value,
            intermediate_values=curve,
            system_attrs=system_attrs,
        )
        trial.number = number
        trial._trial_id = 1000 + number
        trials.append(trial)
    return trials


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_kept_keys_split_exactly_as_optuna_splits(direction: str) -> None:
    from optuna.samplers._tpe import sampler as tpe

    from lrsearch.search_space._tpe_split import _split_with_keys

    rng = random.Random(7)
    study = optuna.create_study(direction=direction)  # Optuna's own: the wrapper passes it on
    for _ in range(40):
        trials = _random_trials(rng, rng.randint(0, 80))
        keys: dict[int, Any] = {}
        for n_below in (0, 1, 3, 10, 100):
            # Twice with the same keys: kept keys answer the second time.
            for _ in range(2):
                ours = _split_with_keys(study, trials, n_below, keys)
                theirs = tpe._split_trials(study, trials, n_below)
                assert [[t.number for t in part] for part in ours] == [
                    [t.number for t in part] for part in theirs
                ]
        assert len(keys) == sum(t.state != TrialState.RUNNING for t in trials)
