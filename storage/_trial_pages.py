"""A study's trials page by page: keyset pagination with an opaque cursor.

Finished trials come from our summary table ``lrsearch_trials``; running and
waiting ones from Optuna's ``trials`` table, with worker and device from
``lrsearch_trial_runs``. Both halves are one ``UNION ALL`` query sorted and
cut in SQL, so a page costs the same whatever the study's size. The few
running/waiting trials on a page then get their parameters and epochs so far
in a constant number of extra queries.

A finished trial shows up once its summary row is written (``finish_trial``
writes it right after Optuna's ``tell``; ``fail_stale_trials`` backfills it if
the worker died in between).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._clock import db_now
from lrsearch.storage._results import (
    ACTIVE_STATES,
    FINISHED_STATES,
    TRIAL_STATES,
    InvalidCursorError,
    TrialRow,
    best_first,
    finite_or_none,
    is_finite,
    optuna_intermediate,
    optuna_trials,
    optuna_user_attrs,
    row_from_mapping,
    state_text,
)
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import trial_results, trial_runs

MAX_PAGE_SIZE = 1000
TrialOrder = Literal["number", "value"]

_optuna_params = _optuna.trial_params
_optuna_system_attrs = _optuna.trial_system_attrs

# (name, type) of the columns both halves of the union select, in order.
_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("trial_id", sa.Integer),
    ("number", sa.Integer),
    ("state", sa.String),
    ("value", sa.Float),
    ("schedule", sa.String),
    ("learning_rate", sa.Float),
    ("batch_size", sa.Integer),
    ("dropout", sa.Float),
    ("weight_init", sa.String),
    ("warmup_epochs", sa.Integer),
    ("epochs_run", sa.Integer),
    ("duration_s", sa.Float),
    ("worker", sa.String),
    ("device", sa.String),
    ("error", sa.Text),
    ("retry_of", sa.Integer),
    ("params", sa.Text),
    ("started_at", sa.Float),
)


def _finished_part(record: StudyRecord, states: Sequence[str]) -> sa.Select[Any]:
    tr = trial_results.c
    given = {"started_at": sa.cast(sa.null(), sa.Float)}
    cols = [given.get(name, tr[name]).label(name) for name, _ in _COLUMNS]
    query = sa.select(*cols).where(tr.study_id == record.study_id)
    if set(states) != set(FINISHED_STATES):
        # Every summary row is a finished trial: filter only for a subset.
        query = query.where(tr.state.in_(states))
    return query


def _active_part(record: StudyRecord, states: Sequence[str]) -> sa.Select[Any]:
    t, runs = optuna_trials.c, trial_runs.c
    given: dict[str, Any] = {
        "trial_id": t.trial_id,
        "number": t.number,
        "state": state_text(t.state),
        "epochs_run": sa.literal(0, sa.Integer),
        "worker": runs.worker,
        "device": runs.device,
        "retry_of": runs.retry_of,
        "started_at": runs.started_at,
    }
    cols = [given.get(name, sa.cast(sa.null(), type_)).label(name) for name, type_ in _COLUMNS]
    return (
        sa.select(*cols)
        .select_from(optuna_trials.outerjoin(trial_runs, runs.trial_id == t.trial_id))
        .where(t.study_id == record.study_id, state_text(t.state).in_(states))
    )


def _encode_cursor(record: StudyRecord, order: str, key: list[Any]) -> str:
    payload = json.dumps({"s": record.study_id, "o": order, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode("ascii")


def _decode_cursor(cursor: str, record: StudyRecord, order: str) -> list[Any]:
    bad = InvalidCursorError(f"invalid cursor {cursor[:40]!r} for this listing")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, dict) or data.get("s") != record.study_id or data.get("o") != order:
        raise bad
    key = data.get("k")
    if not isinstance(key, list) or not key or not _is_int(key[-1]):
        raise bad
    if order == "number" and len(key) == 1:
        return key
    if order == "value" and len(key) == 3:
        missing, value = key[0], key[1]
        if missing == 1 and value is None:
            return key
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if missing == 0 and is_number and math.isfinite(value):
            return key
    raise bad


def _is_int(value: Any) -> bool:
    # Within a 32-bit INTEGER column's range, so a forged cursor cannot overflow it.
    return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31


def _check_args(states: Sequence[str] | None, order: str, limit: int) -> tuple[str, ...]:
    if order not in ("number", "value"):
        raise ValueError(f"order must be 'number' or 'value', not {order!r}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must lie in [1, {MAX_PAGE_SIZE}], not {limit}")
    if states is None:
        return TRIAL_STATES
    unknown = sorted(set(states) - set(TRIAL_STATES))
    if unknown:
        raise ValueError(f"unknown trial states {unknown}; known: {list(TRIAL_STATES)}")
    return tuple(states)


def list_trials(
    conn: Connection,
    record: StudyRecord,
    *,
    states: Sequence[str] | None = None,
    order: TrialOrder = "number",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[TrialRow], str | None]:
    """One page of the study's trials and the cursor of the next page (``None`` at the end).

    Args:
        conn: A connection to the storage.
        record: The study.
        states: Only trials in these states (any of RUNNING, WAITING, COMPLETE,
            PRUNED, FAIL); ``None`` for all.
        order: ``"number"`` (ascending) or ``"value"``: best first by the
            study's direction, trials without a finite value last, ties by number.
        cursor: The cursor a previous page returned, or ``None`` for the first page.
        limit: Page size, 1 to :data:`MAX_PAGE_SIZE`.

    Raises:
        InvalidCursorError: ``cursor`` was not handed out for this study and order.
        ValueError: An unknown state or order, or ``limit`` out of range (the
            caller validates these before calling).
    """
    wanted = _check_args(states, order, limit)
    key = _decode_cursor(cursor, record, order) if cursor is not None else None
    finished = [s for s in FINISHED_STATES if s in wanted]
    active = [s for s in ACTIVE_STATES if s in wanted]
    parts = [_finished_part(record, finished)] if finished else []
    parts += [_active_part(record, active)] if active else []
    if not parts:
        return [], None
    if len(parts) == 1:
        query = _page(parts[0].subquery("u"), order, key, record.direction, limit + 1)
    else:
        # Each half is cut to one page before the union, so the finished half
        # walks the (study_id, number) index instead of sorting the whole study.
        pages = [_page(p.subquery(), order, key, record.direction, limit + 1) for p in parts]
        u = sa.union_all(*(sa.select(page.subquery()) for page in pages)).subquery("u")
        query = _page(u, order, None, record.direction, limit + 1)
    rows = [r._mapping for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    trials = _hydrate(conn, rows)
    if not more:
        return trials, None
    last = trials[-1]
    next_key: list[Any] = [last.number]
    if order == "value":
        absent = 1 if last.value is None else 0
        next_key = [absent, last.value, last.number]
    return trials, _encode_cursor(record, order, next_key)


def _page(
    src: sa.Subquery, order: str, key: list[Any] | None, direction: str, n: int
) -> sa.Select[Any]:
    """The first ``n`` rows of ``src`` after ``key`` in the listing's order."""
    query = sa.select(src)
    if order == "number":
        query = query.order_by(src.c.number)
        if key is not None:
            query = query.where(src.c.number > key[0])
        return query.limit(n)
    has_value = is_finite(src.c.value)
    missing = sa.case((has_value, 0), else_=1)
    sort_value = sa.case((has_value, src.c.value))
    query = query.order_by(missing, best_first(sort_value, direction), src.c.number)
    if key is not None:
        query = query.where(_after_value(src, has_value, key, direction))
    return query.limit(n)


def _after_value(u: Any, has_value: Any, key: list[Any], direction: str) -> Any:
    missing, value, number = key
    if missing == 1:
        return sa.and_(sa.not_(has_value), u.c.number > number)
    worse = u.c.value < value if direction == "maximize" else u.c.value > value
    same_later = sa.and_(u.c.value == value, u.c.number > number)
    return sa.or_(sa.not_(has_value), sa.and_(has_value, sa.or_(worse, same_later)))


def _hydrate(conn: Connection, rows: Sequence[Mapping[Any, Any]]) -> list[TrialRow]:
    """Rows to :class:`TrialRow`; running/waiting ones get params and epochs so far."""
    active_ids = [int(r["trial_id"]) for r in rows if r["state"] in ACTIVE_STATES]
    if not active_ids:
        return [row_from_mapping(r) for r in rows]
    params = active_params(conn, active_ids)
    epochs: dict[int, int] = dict(
        conn.execute(
            sa.select(optuna_intermediate.c.trial_id, sa.func.count())
            .where(optuna_intermediate.c.trial_id.in_(active_ids))
            .group_by(optuna_intermediate.c.trial_id)
        ).all()
    )
    attrs: dict[int, dict[str, Any]] = {}
    for trial_id, key, value_json in conn.execute(
        sa.select(optuna_user_attrs)
        .where(optuna_user_attrs.c.trial_id.in_(active_ids))
        .where(optuna_user_attrs.c.key.in_(("retry_of", "worker", "device")))
    ):
        attrs.setdefault(int(trial_id), {})[str(key)] = json.loads(value_json)
    now = db_now(conn) if any(r["started_at"] is not None for r in rows) else None
    out = []
    for r in rows:
        if r["state"] not in ACTIVE_STATES:
            out.append(row_from_mapping(r))
            continue
        trial_id = int(r["trial_id"])
        started = finite_or_none(r["started_at"])
        extra = attrs.get(trial_id, {})
        out.append(
            row_from_params(
                number=int(r["number"]),
                state=str(r["state"]),
                params=params.get(trial_id, {}),
                epochs_run=int(epochs.get(trial_id, 0)),
                duration_s=(now - started) if now is not None and started is not None else None,
                worker=r["worker"] if r["worker"] is not None else extra.get("worker"),
                device=r["device"] if r["device"] is not None else extra.get("device"),
                retry_of=r["retry_of"] if r["retry_of"] is not None else extra.get("retry_of"),
            )
        )
    return out


def active_params(conn: Connection, trial_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Parameters of unfinished trials: suggested so far, else the enqueued fixed ones."""
    params: dict[int, dict[str, Any]] = {}
    for trial_id, value_json in conn.execute(
        sa.select(_optuna_system_attrs.c.trial_id, _optuna_system_attrs.c.value_json).where(
            _optuna_system_attrs.c.trial_id.in_(trial_ids),
            _optuna_system_attrs.c.key == "fixed_params",
        )
    ):
        fixed = json.loads(value_json)
        if isinstance(fixed, dict):
            params.setdefault(int(trial_id), {}).update(fixed)
    p = _optuna_params.c
    for trial_id, name, internal, dist_json in conn.execute(
        sa.select(p.trial_id, p.param_name, p.param_value, p.distribution_json).where(
            p.trial_id.in_(trial_ids)
        )
    ):
        dist = optuna.distributions.json_to_distribution(dist_json)
        params.setdefault(int(trial_id), {})[str(name)] = dist.to_external_repr(internal)
    return params


def row_from_params(
    *,
    number: int,
    state: str,
    params: Mapping[str, Any],
    epochs_run: int,
    duration_s: float | None,
    worker: Any = None,
    device: Any = None,
    retry_of: Any = None,
    value: float | None = None,
    error: Any = None,
) -> TrialRow:
    """A :class:`TrialRow` for a trial without a summary row, from its Optuna parameters."""
    return row_from_mapping(
        {
            "number": number,
            "state": state,
            "value": value,
            "schedule": params.get("schedule"),
            "learning_rate": params.get("learning_rate"),
            "batch_size": params.get("batch_size"),
            "dropout": params.get("dropout"),
            "weight_init": params.get("weight_init"),
            "warmup_epochs": params.get("warmup_epochs", 0) if params else None,
            "epochs_run": epochs_run,
            "duration_s": duration_s,
            "worker": worker,
            "device": device,
            "error": error,
            "retry_of": retry_of,
            "params": json.dumps(dict(params)),
        }
    )
