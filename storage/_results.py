"""Result types and errors of the fast result queries, and the SQL pieces they share.

The queries live in :mod:`storage._summary` (summary, best, best schedules),
:mod:`storage._trial_pages` (paginated trial lists) and :mod:`storage._curves`
(one trial's detail, learning curves of a few trials). None of them loads every
trial of a study into Python.

Errors (both are :class:`storage.StorageError`)::

    StorageError
    ├── InvalidCursorError   also a ValueError: a cursor this listing did not hand out
    └── TrialNotFoundError   no trial of that number in the study

A value counts as "best" only if it is finite: ``record_result`` stores
non-finite values as NULL, and the queries also skip infinities written by
other means (PostgreSQL keeps ``'Infinity'`` and ``'NaN'`` in a float column).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._errors import StorageError
from lrsearch.storage._tables import trial_results

TRIAL_STATES: tuple[str, ...] = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")
FINISHED_STATES: tuple[str, ...] = ("COMPLETE", "PRUNED", "FAIL")
ACTIVE_STATES: tuple[str, ...] = ("RUNNING", "WAITING")

optuna_trials = _optuna.trials
optuna_intermediate = _optuna.intermediate_values
optuna_user_attrs = _optuna.trial_user_attrs


class InvalidCursorError(StorageError, ValueError):
    """A pagination cursor that this study and ordering did not hand out."""


class TrialNotFoundError(StorageError):
    """The study has no trial with that number."""

    def __init__(self, study: str, number: int) -> None:
        self.study = study
        self.number = number
        super().__init__(f"study {study!r} has no trial {number}")


@dataclass(frozen=True)
class TrialRow:
    """One trial as result pages show it (finished or still running/waiting)."""

    number: int
    state: str
    value: float | None
    schedule: str | None
    learning_rate: float | None
    batch_size: int | None
    dropout: float | None
    weight_init: str | None
    warmup_epochs: int | None
    epochs_run: int
    duration_s: float | None
    worker: str | None
    device: str | None
    error: str | None
    retry_of: int | None
    params: dict[str, Any]


@dataclass(frozen=True)
class StudySummary:
    """Where a study stands: counts per trial state, best trial, epochs spent and saved."""

    counts: dict[str, int]
    finished: int
    best: TrialRow | None
    epochs_spent: int
    epochs_saved: int
    done: bool
    confirmations: dict[str, int] = field(default_factory=dict)
    """Confirmation trials per state (``counts`` holds the search trials only)."""


@dataclass(frozen=True)
class ScheduleStats:
    """One schedule type's results: its best trial, counts and median final value."""

    schedule: str
    best: TrialRow | None
    n_complete: int
    n_pruned: int
    n_failed: int
    median_value: float | None


@dataclass(frozen=True)
class TrialDetail:
    """One trial with its learning curve, LR curve, per-epoch metrics and user attrs."""

    row: TrialRow
    intermediate_values: dict[int, float]
    lr_curve: list[float]
    metrics: list[dict[str, Any]]
    user_attrs: dict[str, Any]
    datetime_start: str | None
    datetime_complete: str | None


def state_text(column: Any) -> Any:
    """Optuna's state column as text (a native enum on PostgreSQL)."""
    return sa.cast(column, sa.String)


def is_finite(column: Any) -> Any:
    """SQL condition: the float column holds a finite number (not NULL, NaN or ±inf)."""
    # IS NOT NULL keeps the condition two-valued, so NOT(...) holds for NULL values too.
    return sa.and_(column.is_not(None), column.between(-sys.float_info.max, sys.float_info.max))


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else ``None``."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def best_first(column: Any, direction: str) -> Any:
    """``ORDER BY`` term that puts the best value first for ``direction``."""
    return column.desc() if direction == "maximize" else column.asc()


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


ROW_COLUMNS: tuple[sa.ColumnClause[Any] | sa.Column[Any], ...] = (
    trial_results.c.number,
    trial_results.c.state,
    trial_results.c.value,
    trial_results.c.schedule,
    trial_results.c.learning_rate,
    trial_results.c.batch_size,
    trial_results.c.dropout,
    trial_results.c.weight_init,
    trial_results.c.warmup_epochs,
    trial_results.c.epochs_run,
    trial_results.c.duration_s,
    trial_results.c.worker,
    trial_results.c.device,
    trial_results.c.error,
    trial_results.c.retry_of,
    trial_results.c.params,
)


def row_from_mapping(m: Mapping[Any, Any]) -> TrialRow:
    """A :class:`TrialRow` from a result row with the columns of :data:`ROW_COLUMNS`."""
    raw_params = m["params"]
    params = json.loads(raw_params) if raw_params else {}
    return TrialRow(
        number=int(m["number"]),
        state=str(m["state"]),
        value=finite_or_none(m["value"]),
        schedule=_opt_str(m["schedule"]),
        learning_rate=finite_or_none(m["learning_rate"]),
        batch_size=_opt_int(m["batch_size"]),
        dropout=finite_or_none(m["dropout"]),
        weight_init=_opt_str(m["weight_init"]),
        warmup_epochs=_opt_int(m["warmup_epochs"]),
        epochs_run=int(m["epochs_run"] or 0),
        duration_s=finite_or_none(m["duration_s"]),
        worker=_opt_str(m["worker"]),
        device=_opt_str(m["device"]),
        error=_opt_str(m["error"]),
        retry_of=_opt_int(m["retry_of"]),
        params=dict(params) if isinstance(params, dict) else {},
    )


def best_key(direction: str) -> Callable[[TrialRow], tuple[int, float, int]]:
    """Sort key: best value first for ``direction``, no value last, ties by lowest number."""
    sign = -1.0 if direction == "maximize" else 1.0

    def key(row: TrialRow) -> tuple[int, float, int]:
        if row.value is None:
            return (1, 0.0, row.number)
        return (0, sign * row.value, row.number)

    return key
