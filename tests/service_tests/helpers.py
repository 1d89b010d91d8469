"""Trials run the way a worker runs them, through storage, with made-up metrics.

No model is trained: the objective is a smooth function of the sampled config,
so results are real Optuna trials with real intermediate values, LR curves and
summary rows, produced in milliseconds. (The worker end to end is tested
elsewhere.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import TrialConfig, sample_config


@dataclass
class DriveTrials:
    """What :func:`drive_trials` did: trial numbers by final state."""

    by_state: dict[str, list[int]] = field(default_factory=dict)

    def numbers(self, state: str) -> list[int]:
        return self.by_state.get(state, [])


def objective(config: TrialConfig, epoch: int) -> float:
    """A made-up validation accuracy: best near lr=0.03, improving each epoch."""
    closeness = 1.0 - min(1.0, abs(math.log10(config.learning_rate) + 1.5) / 3.0)
    return round(0.3 + 0.6 * closeness * (1.0 - 0.5 ** (epoch + 1)) - 0.1 * config.dropout, 6)


def drive_trials(
    backend: storage.Backend,
    record: storage.StudyRecord,
    *,
    outcomes: Sequence[str] = ("COMPLETE",),
    worker: str = "test-host:1",
) -> DriveTrials:
    """Claim and finish one trial per entry of ``outcomes`` (COMPLETE, PRUNED or FAIL).

    COMPLETE trials run every epoch of the budget, PRUNED ones stop after one
    epoch, FAIL ones report a NaN and fail with an error message. Stops early
    if the study hands out no more trials.
    """
    study = storage.load_optuna_study(backend, record)
    result = DriveTrials()
    max_epochs = record.max_epochs
    for outcome in outcomes:
        trial = storage.claim_trial(backend, study, worker=worker, device="cpu")
        if trial is None:
            break
        config = sample_config(trial, record.definition)
        epochs = {"COMPLETE": max_epochs, "PRUNED": 1, "FAIL": 1}[outcome]
        values = [objective(config, e) for e in range(epochs)]
        for epoch, value in enumerate(values):
            trial.report(value, epoch)
        attrs: dict[str, object] = {
            "lr_curve": [config.learning_rate * 0.5**e for e in range(epochs)],
            "metrics": [{"epoch": e, "val_accuracy": v} for e, v in enumerate(values)],
            "epochs_run": epochs,
        }
        if outcome == "FAIL":
            trial.report(float("nan"), epochs)
            attrs["error"] = "diverged: loss is nan"
        storage.finish_trial(
            backend,
            study,
            trial,
            state=TrialState[outcome],
            value=values[-1] if outcome == "COMPLETE" else None,
            user_attrs=attrs,
        )
        result.by_state.setdefault(outcome, []).append(trial.number)
    return result
