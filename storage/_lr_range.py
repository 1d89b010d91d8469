"""The LR range test's result stored with an ``auto`` study: first writer wins.

Stored as the Optuna study user attr ``lr_range`` (so optuna-dashboard and any
Optuna tool see it too): ``{low, high, steepest, diverged, batches, lrs,
losses, settings}``. Two workers that pick up a new ``auto`` study at once may
both run the (short) test; under the study's lock only the first result is
written and the second worker adopts it, so every trial of a study samples
inside one pair of bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lrsearch.storage._engine import Backend
from lrsearch.storage._lock import study_lock

__all__ = ["LR_RANGE_ATTR", "lr_range_bounds", "store_lr_range", "stored_lr_range"]

LR_RANGE_ATTR = "lr_range"


def stored_lr_range(backend: Backend, study_id: int) -> dict[str, Any] | None:
    """The stored range-test result of the study, or ``None`` before the test ran."""
    value = backend.optuna_storage.get_study_user_attrs(study_id).get(LR_RANGE_ATTR)
    return dict(value) if isinstance(value, Mapping) else None


def store_lr_range(backend: Backend, study_id: int, result: Mapping[str, Any]) -> dict[str, Any]:
    """Store ``result`` unless another worker stored one first; return the one kept.

    Raises:
        ValueError: ``result`` has no valid ``low < high`` bounds.
    """
    lr_range_bounds(result)  # never store bounds no trial could sample in
    with study_lock(backend, study_id):
        existing = stored_lr_range(backend, study_id)
        if existing is not None:
            return existing
        backend.optuna_storage.set_study_user_attr(study_id, LR_RANGE_ATTR, dict(result))
    return dict(result)


def lr_range_bounds(result: Mapping[str, Any]) -> tuple[float, float]:
    """``(low, high)`` of a stored result.

    Raises:
        ValueError: They are missing, not numbers, or not ``0 < low < high``.
    """
    low, high = result.get("low"), result.get("high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        raise ValueError(f"an LR range needs numeric low and high, got {low!r} and {high!r}")
    if not 0.0 < low < high:
        raise ValueError(f"an LR range needs 0 < low < high, got {low} and {high}")
    return float(low), float(high)
