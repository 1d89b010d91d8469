"""lrsearch's TPE keeps finished trials' parameter arrays; its proposals stay Optuna's.

The arrays :class:`ColumnTPESampler` builds from its columns are compared with
Optuna's own ``TPESampler._get_internal_repr`` on every pass of real studies
(lrsearch's define-by-run space: conditional schedule parameters, pruned and
running trials), and whole studies run with it propose exactly what Optuna's
TPE proposes with the same seed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import make_pruner, make_sampler, parse_definition, sample_config
from lrsearch.search_space._balanced import unwrap_sampler
from lrsearch.storage._tpe_columns import ColumnTPESampler


def _definition(**sampler: Any) -> Any:
    return parse_definition(
        {
            "name": "columns",
            "task": "synthetic",
            "budget": {"n_trials": 60, "max_epochs": 4},
            "sampler": {"type": "tpe", "seed": 11, **sampler},
            "pruner": {"type": "hyperband", "min_epochs": 1},
            "confirm": {"top_k": 0, "seeds": 0},
        }
    )


def _value(params: dict[str, Any], epoch: int) -> float:
    """A deterministic curve that depends on the schedule and the learning rate."""
    rate = math.log10(params["learning_rate"])
    bonus = {"cosine": 0.1, "step": 0.05}.get(params["schedule"], 0.0)
    return 0.5 + bonus - 0.05 * abs(rate + 2) + 0.02 * epoch


def _play(study: optuna.Study, definition: Any, n: int) -> list[dict[str, Any]]:
    """``n`` trials; every seventh is left running (TPE's constant liar sees it)."""
    proposed = []
    for i in range(n):
        trial = study.ask()
        sample_config(trial, definition)
        proposed.append(dict(trial.params))
        if i % 7 == 6:
            continue
        pruned = False
        for epoch in range(4):
            trial.report(_value(trial.params, epoch), epoch)
            if trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, _value(trial.params, 3))
    return proposed


def test_every_pass_gives_optunas_arrays_value_for_value_and_dtype(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = ColumnTPESampler._get_internal_repr
    checked: list[int] = []

    def compared(self: ColumnTPESampler, trials: Any, search_space: Any, study: Any) -> Any:
        got = ours(self, trials, search_space, study)
        want = optuna.samplers.TPESampler._get_internal_repr(self, trials, search_space, study)
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        checked.append(len(next(iter(want.values()), [])))
        return got

    monkeypatch.setattr(ColumnTPESampler, "_get_internal_repr", compared)
    definition = _definition()
    sampler = make_sampler(definition, tpe=ColumnTPESampler)
    assert isinstance(unwrap_sampler(sampler), ColumnTPESampler)
    study = optuna.create_study(
        study_name="columns",  # Hyperband's brackets hash the name: the same run every time
        direction="maximize",
        sampler=sampler,
        pruner=make_pruner(definition),
    )
    _play(study, definition, 45)
    # Past the start-up, every suggest compared two passes, some over dozens of trials.
    assert len(checked) > 100
    assert max(checked) >= 25
    assert 0 in checked or min(checked) < 5  # the rare conditional parameters too


@pytest.mark.parametrize("multivariate", [True, False])
def test_a_study_proposes_what_optunas_tpe_proposes_with_the_same_seed(multivariate: bool) -> None:
    definition = _definition(balance_schedules=False)
    runs = []
    for sampler_type in (optuna.samplers.TPESampler, ColumnTPESampler):
        study = optuna.create_study(
            study_name="same",  # Hyperband's brackets hash the study's name
            direction="maximize",
            sampler=sampler_type(seed=5, multivariate=multivariate),
            pruner=make_pruner(definition),
        )
        runs.append(_play(study, definition, 40))
    assert runs[0] == runs[1]
    # Not a vacuous check: TPE moved away from its start-up samples.
    assert len({p["learning_rate"] for p in runs[0]}) == 40


def test_the_storage_builds_studies_with_it_behind_the_balancing(
    sqlite_url: str, study_name: str
) -> None:
    definition = parse_definition(
        {"name": study_name, "task": "synthetic", "sampler": {"type": "tpe", "seed": 1}}
    )
    backend = storage.open_backend(sqlite_url)
    try:
        record = storage.create_study(backend, definition)
        study = storage.load_optuna_study(backend, record)
        assert type(unwrap_sampler(study.sampler)) is ColumnTPESampler
        random = definition.model_copy(
            update={"sampler": definition.sampler.model_copy(update={"type": "random"})}
        )
        random_study = storage.load_optuna_study(backend, replace(record, definition=random))
        assert type(unwrap_sampler(random_study.sampler)) is optuna.samplers.RandomSampler
    finally:
        backend.dispose()
