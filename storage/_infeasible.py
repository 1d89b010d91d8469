"""Batch sizes that ran out of GPU memory, per device, for a study's summary.

A trial that ran out of memory carries the user attr ``infeasible``:
``{batch_size, device, memory_gb}`` (set by the worker; see
``lrsearch.workers.loop``). This module reads those back, one query over
Optuna's user attrs, and groups them: no table of its own, so nothing to
migrate and nothing to keep in step with the trials.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage._optuna_schema import trial_user_attrs, trials

INFEASIBLE_ATTR = "infeasible"


@dataclass(frozen=True)
class InfeasibleBatch:
    """One batch size that did not fit on one kind of device.

    Attributes:
        batch_size: The batch size (as sampled; ``None`` if unknown).
        device: The device name (``NVIDIA H100 80GB HBM3``) or, without CUDA,
            the worker's device label.
        memory_gb: The device's total memory in GiB; ``None`` without CUDA.
        trials: How many of the study's trials ran out of memory this way.
    """

    batch_size: int | None
    device: str
    memory_gb: float | None
    trials: int


def _key(value: Any) -> tuple[int | None, str, float | None] | None:
    if not isinstance(value, dict):
        return None  # written by something else: not ours to interpret
    bs, device, mem = value.get("batch_size"), value.get("device"), value.get("memory_gb")
    return (
        int(bs) if isinstance(bs, int | float) else None,
        str(device),
        float(mem) if isinstance(mem, int | float) else None,
    )


def infeasible_batches(conn: Connection, study_id: int) -> list[InfeasibleBatch]:
    """The study's infeasible batch sizes, grouped by device.

    Args:
        conn: A connection to the storage.
        study_id: The study's Optuna id.

    Returns:
        One entry per (batch size, device, memory), with its trial count;
        sorted by device, memory and batch size.
    """
    rows = conn.execute(
        sa.select(trial_user_attrs.c.value_json)
        .join(trials, trials.c.trial_id == trial_user_attrs.c.trial_id)
        .where(trials.c.study_id == study_id, trial_user_attrs.c.key == INFEASIBLE_ATTR)
    ).scalars()
    counts = Counter(k for k in (_key(json.loads(v)) for v in rows) if k is not None)
    return [
        InfeasibleBatch(batch_size=bs, device=dev, memory_gb=mem, trials=n)
        for (bs, dev, mem), n in sorted(
            counts.items(), key=lambda kv: (kv[0][1], -(kv[0][2] or 0.0), kv[0][0] or 0)
        )
    ]
