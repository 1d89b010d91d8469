"""Parameter importance, computed with Optuna's evaluators and cached per study.

Optuna ranks only the parameters every completed trial has (the intersection
search space), so the schedule-specific parameters, which exist only for
trials of their schedule, drop out by themselves once several schedules have
completed trials. Big studies are ranked on a bounded, evenly spread sample of
their completed trials (:data:`IMPORTANCE_SAMPLE`). A result stays valid until
more trials complete: the cache is keyed by study and the number of completed
trials (read from the study's running totals), so pruned and failed trials do
not invalidate it.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import optuna

from lrsearch import storage
from lrsearch.service.errors import ImportanceUnavailableError
from lrsearch.service.settings import ImportanceEvaluator

MIN_COMPLETE = 2
IMPORTANCE_SAMPLE = 1000
MIN_RELIABLE_TRIALS = 20
"""Below this many completed trials an importance ranking comes with a warning.

Measured with bench/importance_stability.py (20 synthetic studies, the
parameter that matters most known by construction, ranked against 200 trials):
with Optuna's ped_anova (the default evaluator) the top parameter agreed with
the 200-trial ranking in 6/20 studies at 10 trials, 17/20 at 15 and 19/20 at
20; with fanova 11/20 at 10, 13/20 at 20 and 18/20 at 30.
"""


def reliability_warning(n_trials: int) -> str | None:
    """What to tell a reader of importances computed from ``n_trials`` completed trials."""
    if n_trials >= MIN_RELIABLE_TRIALS:
        return None
    return (
        f"based on only {n_trials} completed trials: below {MIN_RELIABLE_TRIALS} the ranking "
        "of the parameters is mostly noise (even the most important one is often wrong)"
    )


@dataclass(frozen=True)
class Importance:
    """Normalised importances (largest first), and what the evaluator warned about."""

    evaluator: str
    n_complete: int
    importances: dict[str, float]
    notes: list[str]


def _evaluator(name: ImportanceEvaluator) -> optuna.importance.BaseImportanceEvaluator:
    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=0)
    if name == "mean_decrease_impurity":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    return optuna.importance.PedAnovaImportanceEvaluator()


def compute_importance(
    backend: storage.Backend,
    record: storage.StudyRecord,
    *,
    n_complete: int,
    evaluator: ImportanceEvaluator,
) -> Importance:
    """Rank the study's parameters by importance for the objective.

    Raises:
        ImportanceUnavailableError: Fewer than two completed trials, or no
            parameter that every completed trial shares.
    """
    if n_complete < MIN_COMPLETE:
        raise ImportanceUnavailableError(
            f"importance needs at least {MIN_COMPLETE} completed trials; "
            f"study {record.name!r} has {n_complete}"
        )
    # A bounded, evenly spread sample keeps big studies cheap: loading every
    # trial of a 20k-trial study alone takes tens of seconds.
    with backend.engine.connect() as conn:
        trials = storage.importance_sample(conn, record, limit=IMPORTANCE_SAMPLE)
    study = optuna.create_study(direction=record.definition.direction)
    study.add_trials(trials)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = optuna.importance.get_param_importances(study, evaluator=_evaluator(evaluator))
        except (ValueError, RuntimeError) as exc:
            # Optuna's way of saying the trials cannot be ranked (e.g. nothing in common).
            raise ImportanceUnavailableError(f"importance cannot be computed yet: {exc}") from None
    if not raw:
        raise ImportanceUnavailableError(
            "importance cannot be computed yet: the completed trials share no parameter"
        )
    ranked = sorted(
        ((name, float(v) if math.isfinite(v) else 0.0) for name, v in raw.items()),
        key=lambda item: -item[1],
    )
    notes = sorted({str(w.message) for w in caught})
    return Importance(evaluator, n_complete, dict(ranked), notes)


class ImportanceCache:
    """Importances per study, valid while its number of completed trials is unchanged.

    Thread-safe; keeps the ``size`` most recently used studies (0 disables it).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[int, tuple[int, Importance]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, study_id: int, n_complete: int) -> Importance | None:
        """The cached result if it was computed at ``n_complete`` completed trials."""
        with self._lock:
            entry = self._entries.get(study_id)
            if entry is None or entry[0] != n_complete:
                return None
            self._entries.move_to_end(study_id)
            return entry[1]

    def put(self, study_id: int, n_complete: int, result: Importance) -> None:
        """Remember ``result`` for the study at ``n_complete`` completed trials."""
        if self._size == 0:
            return
        with self._lock:
            self._entries[study_id] = (n_complete, result)
            self._entries.move_to_end(study_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
