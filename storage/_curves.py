"""Learning curves: one trial in full, or the curves of a bounded list of trials.

:func:`trial_detail` loads one trial through Optuna's storage. :func:`curves`
reads the intermediate values and ``lr_curve`` of up to :data:`MAX_CURVES`
trials straight from Optuna's tables in three queries, however many trials
are asked for, for the dashboard's overlaid curves.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from optuna.trial import FrozenTrial
from sqlalchemy.engine import Connection

from lrsearch.storage._clock import db_now
from lrsearch.storage._engine import Backend
from lrsearch.storage._results import (
    ROW_COLUMNS,
    TrialDetail,
    TrialNotFoundError,
    TrialRow,
    optuna_intermediate,
    optuna_trials,
    optuna_user_attrs,
    row_from_mapping,
    state_text,
)
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results, trial_runs
from lrsearch.storage._trial_pages import row_from_params

MAX_CURVES = 200

_SPECIAL = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}


def _floats(value: Any) -> list[float]:
    if not isinstance(value, list):
        return []
    out = []
    for v in value:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _iso(dt: datetime.datetime | None) -> str | None:
    # Optuna hands out naive local times; answer in UTC with the offset spelled out.
    return None if dt is None else dt.astimezone(datetime.UTC).isoformat()


def _row_without_summary(conn: Connection, trial_id: int, frozen: FrozenTrial) -> TrialRow:
    run = conn.execute(sa.select(trial_runs).where(trial_runs.c.trial_id == trial_id)).first()
    runm = run._mapping if run is not None else {}
    started = runm.get("started_at")
    finished = frozen.state.is_finished()
    duration = None
    if started is not None and not finished:
        duration = db_now(conn) - float(started)
    attrs = frozen.user_attrs
    params = frozen.params or dict(frozen.system_attrs.get("fixed_params") or {})
    return row_from_params(
        number=frozen.number,
        state=frozen.state.name,
        params=params,
        epochs_run=len(frozen.intermediate_values),
        duration_s=duration,
        worker=_first(runm.get("worker"), attrs.get("worker")),
        device=_first(runm.get("device"), attrs.get("device")),
        retry_of=_first(runm.get("retry_of"), attrs.get("retry_of")),
        value=frozen.value if frozen.values else None,
        error=attrs.get("error"),
    )


def trial_detail(backend: Backend, record: StudyRecord, number: int) -> TrialDetail:
    """One trial with its learning curve (intermediate values), ``lr_curve`` and metrics.

    Intermediate values are as reported: a diverged epoch may hold NaN or ±inf.
    Datetimes are ISO 8601 in UTC with the offset, e.g. ``2025-01-01T12:00:00+00:00``.

    Args:
        backend: The storage; the trial is loaded through ``backend.optuna_storage``.
        record: The study.
        number: The trial's number in the study.

    Returns:
        The trial's row (as :func:`storage.list_trials` gives it) and its curves.

    Raises:
        TrialNotFoundError: The study has no trial ``number``.
    """
    with backend.engine.connect() as conn:
        summary = conn.execute(
            sa.select(trial_results.c.trial_id, *ROW_COLUMNS).where(
                trial_results.c.study_id == record.study_id, trial_results.c.number == number
            )
        ).first()
        if summary is not None:
            trial_id = int(summary.trial_id)
        else:
            found = conn.execute(
                sa.select(optuna_trials.c.trial_id).where(
                    optuna_trials.c.study_id == record.study_id, optuna_trials.c.number == number
                )
            ).first()
            if found is None:
                raise TrialNotFoundError(record.name, number)
            trial_id = int(found.trial_id)
        frozen = backend.optuna_storage.get_trial(trial_id)
        if summary is not None:
            row = row_from_mapping(summary._mapping)
        else:
            row = _row_without_summary(conn, trial_id, frozen)
    attrs = dict(frozen.user_attrs)
    metrics = attrs.get("metrics")
    return TrialDetail(
        row=row,
        intermediate_values=dict(sorted(frozen.intermediate_values.items())),
        lr_curve=_floats(attrs.get("lr_curve")),
        metrics=[m for m in metrics if isinstance(m, dict)] if isinstance(metrics, list) else [],
        user_attrs=attrs,
        datetime_start=_iso(frozen.datetime_start),
        datetime_complete=_iso(frozen.datetime_complete),
    )


def curves(
    backend_or_conn: Backend | Connection, record: StudyRecord, numbers: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Learning curves of the given trials, for overlaid plots.

    Returns ``{number: {"intermediate_values": {step: value}, "lr_curve": [...],
    "state": "COMPLETE"}}`` for each number the study has (unknown numbers are
    left out). Three queries whatever the number of trials.

    Args:
        backend_or_conn: The storage, or a connection to it.
        record: The study.
        numbers: Trial numbers; duplicates count once.

    Returns:
        The curves by trial number, in ascending order of number.

    Raises:
        ValueError: More than :data:`MAX_CURVES` distinct trial numbers.
    """
    wanted = sorted({int(n) for n in numbers})
    if len(wanted) > MAX_CURVES:
        raise ValueError(f"at most {MAX_CURVES} trials per call, got {len(wanted)}")
    if not wanted:
        return {}
    if isinstance(backend_or_conn, Backend):
        with backend_or_conn.engine.connect() as conn:
            return _curves(conn, record, wanted)
    return _curves(backend_or_conn, record, wanted)


def _curves(conn: Connection, record: StudyRecord, numbers: list[int]) -> dict[int, dict[str, Any]]:
    t = optuna_trials.c
    trials = conn.execute(
        sa.select(t.trial_id, t.number, state_text(t.state)).where(
            t.study_id == record.study_id, t.number.in_(numbers)
        )
    ).all()
    by_id: dict[int, dict[str, Any]] = {}
    out: dict[int, dict[str, Any]] = {}
    for trial_id, number, state in sorted(trials, key=lambda r: int(r[1])):
        entry: dict[str, Any] = {"intermediate_values": {}, "lr_curve": [], "state": str(state)}
        by_id[int(trial_id)] = entry
        out[int(number)] = entry
    if not by_id:
        return out
    iv = optuna_intermediate.c
    kind_text = state_text(iv.intermediate_value_type)
    for trial_id, step, value, kind in conn.execute(
        sa.select(iv.trial_id, iv.step, iv.intermediate_value, kind_text)
        .where(iv.trial_id.in_(list(by_id)))
        .order_by(iv.trial_id, iv.step)
    ):
        special = _SPECIAL.get(str(kind))
        by_id[int(trial_id)]["intermediate_values"][int(step)] = (
            special if special is not None else float(value)
        )
    ua = optuna_user_attrs.c
    for trial_id, value_json in conn.execute(
        sa.select(ua.trial_id, ua.value_json).where(
            ua.trial_id.in_(list(by_id)), ua.key == "lr_curve"
        )
    ):
        by_id[int(trial_id)]["lr_curve"] = _floats(json.loads(value_json))
    return out
