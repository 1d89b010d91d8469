"""TPE whose parameter arrays of finished trials are kept between proposals.

Optuna's ``TPESampler`` turns the history into one array per parameter
(``_get_internal_repr``) twice for every ``suggest``, once for the good and
once for the bad trials: with lrsearch's space that is twelve passes over the
whole study per trial, a Python loop over every trial's parameters each time.
On a study of 9,000 trials those passes were about a quarter of a trial's CPU.

A finished trial's parameters never change, so :class:`ColumnTPESampler`
converts each one once, into a column per (parameter name, distribution), and
answers each pass by indexing those columns with the passed trials' rows. A
trial that is not finished (TPE's ``constant_liar`` includes running trials,
whose relative parameters can still arrive) goes through Optuna's own
conversion every time. The arrays are Optuna's, value for value and in the
same order; only how they are computed differs.

It lives in the storage layer because its arrays are numpy's (Optuna's
estimators take them), which the search space does not import; the storage
hands it to :func:`~lrsearch.search_space.make_sampler` for every study it
builds.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial

# Row lists of the last few trial lists (TPE passes the same "below" and
# "above" lists to every suggest of a trial); the lists are kept referenced so
# their ids cannot be reused while they are remembered.
_REMEMBERED_LISTS = 4


class _Column:
    """The internal values of one parameter over the rows, and where it is present."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.present: list[bool] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def extend(self, trials: list[FrozenTrial], name: str, dist: BaseDistribution) -> None:
        for trial in trials[len(self.values) :]:
            if name in trial.params:
                self.values.append(dist.to_internal_repr(trial.params[name]))
                self.present.append(True)
            else:
                self.values.append(0.0)
                self.present.append(False)
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = (
                np.asarray(self.values, dtype=np.float64),
                np.asarray(self.present, dtype=bool),
            )
        return self._arrays


class ColumnTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, converting each finished trial's parameters once instead of per pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._row_of: dict[int, int] = {}  # trial id -> row
        self._finished: list[FrozenTrial] = []
        self._columns: dict[tuple[str, BaseDistribution], _Column] = {}
        self._rows_of_lists: list[tuple[list[FrozenTrial], np.ndarray, list[int]]] = []
        # One study (and its sampler) may serve several threads of a worker.
        self._cache_lock = threading.Lock()

    def _rows(self, trials: list[FrozenTrial]) -> tuple[np.ndarray, list[int]]:
        """Each trial's row (-1 if not finished), and the positions of unfinished trials."""
        for remembered, known_rows, known_loose in self._rows_of_lists:
            if remembered is trials and len(known_rows) == len(trials):
                return known_rows, known_loose
        rows = np.empty(len(trials), dtype=np.intp)
        loose: list[int] = []
        row_of = self._row_of
        for position, trial in enumerate(trials):
            row = row_of.get(trial._trial_id)
            if row is None:
                if trial.state.is_finished():
                    row = row_of[trial._trial_id] = len(self._finished)
                    self._finished.append(trial)
                else:
                    row = -1
                    loose.append(position)
            rows[position] = row
        self._rows_of_lists = [(trials, rows, loose), *self._rows_of_lists][:_REMEMBERED_LISTS]
        return rows, loose

    def _column(self, name: str, dist: BaseDistribution) -> _Column:
        column = self._columns.get((name, dist))
        if column is None:
            column = self._columns[(name, dist)] = _Column()
        if len(column.values) < len(self._finished):
            column.extend(self._finished, name, dist)
        return column

    def _get_internal_repr(
        self, trials: list[FrozenTrial], search_space: dict[str, BaseDistribution], study: Study
    ) -> dict[str, np.ndarray]:
        if not search_space:
            return {}
        with self._cache_lock:
            rows, loose = self._rows(trials)
            arrays = {
                name: self._column(name, dist).arrays() for name, dist in search_space.items()
            }
        finished = rows >= 0
        taken = np.zeros(len(trials), dtype=bool)
        picked = {name: np.zeros(len(trials), dtype=np.float64) for name in search_space}
        if finished.any():
            finished_rows = rows[finished]
            everywhere = np.ones(len(finished_rows), dtype=bool)
            for name, (values, present) in arrays.items():
                everywhere &= present[finished_rows]
                picked[name][finished] = values[finished_rows]
            taken[finished] = everywhere
        for position in loose:
            params = self._get_params(trials[position], study)
            if search_space.keys() <= params.keys():
                taken[position] = True
                for name, dist in search_space.items():
                    picked[name][position] = dist.to_internal_repr(params[name])
        if not taken.any():
            return {name: np.asarray([]) for name in search_space}
        # Optuna's arrays hold a categorical's choice indices (ints), other values as floats.
        return {
            name: picked[name][taken].astype(np.int64)
            if isinstance(dist, CategoricalDistribution)
            else picked[name][taken]
            for name, dist in search_space.items()
        }
