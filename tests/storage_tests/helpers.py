"""Build studies through the real trial path, and brute-force answers over ``study.trials``.

Trials are claimed with :func:`storage.claim_trial`, sampled with
:func:`search_space.sample_config`, reported epoch by epoch and ended with
:func:`storage.finish_trial` or :func:`storage.give_back`, as a worker would.
The brute-force side loads every trial (a test may; the library must not).
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch import storage
from lrsearch.search_space import StudyDefinition, parse_definition, sample_config
from lrsearch.storage import Backend, StudyRecord

STATES = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")


@dataclass(frozen=True)
class Step:
    """One trial to play.

    ``schedule`` is enqueued (partially fixed params) before the claim, so the
    test chooses it; ``None`` claims whatever waits (a retry). ``outcome`` is a
    trial state name, ``"GIVE_BACK"`` (the worker is lost: fail, maybe retry),
    ``"RUNNING"`` (left running) or ``"BASELINE"`` (enqueued, left waiting).
    ``curve`` are the values reported per epoch; the value told for COMPLETE is
    ``value``, a PRUNED trial's value is its last reported value.
    """

    schedule: str | None
    outcome: str
    value: float | None = None
    curve: tuple[float, ...] = ()


def definition(**overrides: Any) -> StudyDefinition:
    """A fresh definition with a unique name (the PostgreSQL database is shared)."""
    raw: dict[str, Any] = {
        "name": f"results-{uuid.uuid4().hex[:12]}",
        "task": "synthetic",
        "budget": {"n_trials": 10, "max_epochs": 5, "max_retries": 1},
        "sampler": {"type": "random", "seed": 7},
        "pruner": {"type": "none"},
        # Played trial by trial: no confirmation phase after the budget (tested on its own).
        "confirm": {"top_k": 0},
        "search_space": {"schedules": ["step", "exponential", "cosine", "plateau", "cyclic"]},
    }
    raw.update(overrides)
    return parse_definition(raw)


def budget_of(steps: list[Step]) -> int:
    """Trials of ``steps`` that count toward the budget (a claimed retry does not)."""
    return sum(1 for s in steps if s.schedule is not None)


@dataclass
class Played:
    record: StudyRecord
    study: optuna.Study
    numbers: dict[int, int] = field(default_factory=dict)  # step index -> trial number


def play(backend: Backend, defn: StudyDefinition, steps: list[Step]) -> Played:
    """Create the study and play ``steps`` in order through the real worker path."""
    record = storage.create_study(backend, defn)
    study = storage.load_optuna_study(backend, record)
    played = Played(record=record, study=study)
    for i, s in enumerate(steps):
        if s.schedule is not None:
            storage.enqueue_fixed(backend, study, record, {"schedule": s.schedule})
        if s.outcome == "BASELINE":
            continue
        trial = storage.claim_trial(backend, study, worker="host:1", device="cpu")
        assert trial is not None, f"step {i}: nothing to claim"
        played.numbers[i] = trial.number
        config = sample_config(trial, defn)
        lrs = [config.learning_rate * 0.5**e for e in range(len(s.curve))]
        for epoch, v in enumerate(s.curve):
            trial.report(v, epoch)
        attrs: dict[str, Any] = {
            "lr_curve": lrs,
            "metrics": [{"epoch": e, "val": v} for e, v in enumerate(s.curve)],
        }
        if s.outcome == "RUNNING":
            continue
        if s.outcome == "GIVE_BACK":
            for key, val in attrs.items():
                trial.set_user_attr(key, val)
            assert storage.give_back(
                backend, study, trial._trial_id, reason="worker lost", definition=defn
            )
            continue
        state = TrialState[s.outcome]
        if state == TrialState.FAIL:
            attrs["error"] = "diverged"
        storage.finish_trial(
            backend,
            study,
            trial,
            state=state,
            value=s.value if state == TrialState.COMPLETE else None,
            user_attrs=attrs,
        )
    return played


# --- brute force over study.trials -------------------------------------------------


def all_trials(played: Played) -> list[FrozenTrial]:
    return played.study.get_trials(deepcopy=False)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """FAIL trials that a later trial repeats (``retry_of``)."""
    return {int(t.user_attrs["retry_of"]) for t in trials if "retry_of" in t.user_attrs}


def sort_best(trials: list[FrozenTrial], direction: str) -> list[FrozenTrial]:
    sign = -1.0 if direction == "maximize" else 1.0

    def key(t: FrozenTrial) -> tuple[int, float, int]:
        v = finite(t.value) if t.state.is_finished() and t.values else None
        return (1, 0.0, t.number) if v is None else (0, sign * v, t.number)

    return sorted(trials, key=key)


def brute_best(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    ok = [t for t in trials if t.state == TrialState.COMPLETE and finite(t.value) is not None]
    ranked = sort_best(ok, direction)
    return ranked[0] if ranked else None


def brute_summary(played: Played) -> dict[str, Any]:
    trials = all_trials(played)
    record = played.record
    counts = Counter(t.state.name for t in trials)
    retried = retried_numbers(trials)
    finished = sum(counts[s] for s in ("COMPLETE", "PRUNED", "FAIL")) - len(retried)
    return {
        "counts": {s: counts.get(s, 0) for s in STATES},
        "finished": finished,
        "best": brute_best(trials, record.direction),
        "epochs_spent": sum(len(t.intermediate_values) for t in trials),
        "epochs_saved": sum(
            record.max_epochs - len(t.intermediate_values)
            for t in trials
            if t.state == TrialState.PRUNED
        ),
        "done": finished >= record.n_trials and counts["RUNNING"] + counts["WAITING"] == 0,
    }


def brute_schedules(played: Played) -> list[dict[str, Any]]:
    trials = all_trials(played)
    record = played.record
    retried = retried_numbers(trials)
    out: list[dict[str, Any]] = []
    for sched in record.definition.search_space.schedules:
        mine = [t for t in trials if t.params.get("schedule") == sched]
        finals = [
            v
            for t in mine
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and (v := finite(t.value)) is not None
        ]
        out.append(
            {
                "schedule": sched,
                "best": brute_best(mine, record.direction),
                "n_complete": sum(t.state == TrialState.COMPLETE for t in mine),
                "n_pruned": sum(t.state == TrialState.PRUNED for t in mine),
                "n_failed": sum(
                    t.state == TrialState.FAIL and t.number not in retried for t in mine
                ),
                "median_value": statistics.median(finals) if finals else None,
                "top": sort_best(
                    [
                        t
                        for t in mine
                        if t.state == TrialState.COMPLETE and finite(t.value) is not None
                    ],
                    record.direction,
                ),
            }
        )
    sign = -1.0 if record.direction == "maximize" else 1.0
    with_best = sorted(
        (s for s in out if s["best"] is not None),
        key=lambda s: (sign * s["best"].value, s["best"].number),
    )
    return with_best + [s for s in out if s["best"] is None]
