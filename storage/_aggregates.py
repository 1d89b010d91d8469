"""Running totals of each study's results, kept as trials finish.

``lrsearch_study_aggregates`` holds one row per study, kind of trial (search
or confirmation) and schedule type: trials COMPLETE / PRUNED / FAIL, failures
that a retry repeats, epochs trained, and the best value either way with its
trial number. The study page, the study list and the schedules leaderboard
read these few rows instead of scanning every summary row of a study.

Consistency. The totals are a function of ``lrsearch_trials``: every write of
a summary row goes through :func:`storage.record_result`, which adds the row's
share here in the same transaction (:func:`add_result`), so the two cannot
drift. A new row is added with ``UPDATE ... SET n = n + 1`` after an
``INSERT ... ON CONFLICT DO NOTHING``: concurrent writers lose no update on
PostgreSQL (the row lock) or SQLite (one writer at a time). A summary row that
is written again (an idempotent re-record) recomputes its study's totals from
the rows (:func:`refresh_study`), which revision 0003 also did for every
study that existed before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from lrsearch.storage import _optuna_schema as _optuna
from lrsearch.storage._budget import (
    CONFIRMATION_MARKER,
    CONFIRMATION_OF,
    FINISHED,
    STATE_TEXT,
    BudgetCounts,
)
from lrsearch.storage._studies import StudyRecord
from lrsearch.storage._tables import study_aggregates, trial_results

# The predicate of revision 0003's partial index over Optuna's unfinished trials.
UNFINISHED = "state IN ('RUNNING', 'WAITING')"

_agg = study_aggregates.c
_COUNTERS = (
    "n_complete",
    "n_pruned",
    "n_fail",
    "n_retried",
    "n_valued",
    "epochs_run",
    "pruned_epochs",
)


@dataclass(frozen=True)
class Totals:
    """One row of the aggregates: a study's trials of one kind and schedule."""

    confirmation: bool
    schedule: str | None
    n_complete: int
    n_pruned: int
    n_fail: int
    n_retried: int
    n_valued: int
    epochs_run: int
    pruned_epochs: int
    max_value: float | None
    max_number: int | None
    min_value: float | None
    min_number: int | None

    def best(self, direction: str) -> tuple[float, int] | None:
        """The best value by ``direction`` and the lowest trial number that has it."""
        if direction == "maximize":
            value, number = self.max_value, self.max_number
        else:
            value, number = self.min_value, self.min_number
        return None if value is None or number is None else (value, number)


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _shares(row: Mapping[str, Any]) -> dict[str, int]:
    """What one summary row adds to each counter of its group."""
    state = row["state"]
    epochs = int(row.get("epochs_run") or 0)
    return {
        "n_complete": int(state == "COMPLETE"),
        "n_pruned": int(state == "PRUNED"),
        "n_fail": int(state == "FAIL"),
        "n_retried": int(state == "FAIL" and bool(row.get("retried"))),
        "n_valued": int(state in ("COMPLETE", "PRUNED") and _finite(row.get("value"))),
        "epochs_run": epochs,
        "pruned_epochs": epochs if state == "PRUNED" else 0,
    }


def _insert_ignore(conn: Connection, values: dict[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(study_aggregates).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite.insert(study_aggregates).values(**values).on_conflict_do_nothing())


def add_result(conn: Connection, row: Mapping[str, Any], *, confirmation: bool) -> None:
    """Add a new summary row's share to its group's totals.

    Call in the transaction that inserts the row (see the module doc).

    Args:
        conn: The connection that writes the summary row.
        row: The row as written to ``lrsearch_trials`` (``study_id``, ``number``,
            ``state``, ``value``, ``schedule``, ``epochs_run``, ``retried``).
        confirmation: Whether the trial is a confirmation (``confirmation_of``).
    """
    key = {
        "study_id": row["study_id"],
        "confirmation": confirmation,
        "schedule": row.get("schedule") or "",
    }
    _insert_ignore(conn, key)
    values: dict[str, Any] = {
        name: _agg[name] + share for name, share in _shares(row).items() if share
    }
    value, number = row.get("value"), row["number"]
    if row["state"] == "COMPLETE" and _finite(value):
        # SET reads the row as it was before the statement, in both dialects.
        higher = sa.or_(
            _agg.max_value.is_(None),
            _agg.max_value < value,
            sa.and_(_agg.max_value == value, _agg.max_number > number),
        )
        lower = sa.or_(
            _agg.min_value.is_(None),
            _agg.min_value > value,
            sa.and_(_agg.min_value == value, _agg.min_number > number),
        )
        values["max_value"] = sa.case((higher, value), else_=_agg.max_value)
        values["max_number"] = sa.case((higher, number), else_=_agg.max_number)
        values["min_value"] = sa.case((lower, value), else_=_agg.min_value)
        values["min_number"] = sa.case((lower, number), else_=_agg.min_number)
    if not values:
        return
    conn.execute(
        study_aggregates.update().where(*(_agg[k] == v for k, v in key.items())).values(**values)
    )


def _is_confirmation(trial_id: Any) -> Any:
    return sa.exists().where(
        _optuna.trial_user_attrs.c.trial_id == trial_id,
        _optuna.trial_user_attrs.c.key == CONFIRMATION_OF,
    )


def scan_totals(conn: Connection, study_id: int) -> list[Totals]:
    """The totals computed from every summary row of the study (a full scan).

    What the aggregates must always equal; used to rebuild them.
    """
    tr = trial_results.c
    conf = _is_confirmation(tr.trial_id).label("confirmation")
    query = sa.select(
        tr.number, tr.state, tr.value, tr.schedule, tr.epochs_run, tr.retried, conf
    ).where(tr.study_id == study_id)
    return _totals_from_rows(dict(r._mapping) for r in conn.execute(query))


def _totals_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Totals]:
    groups: dict[tuple[bool, str | None], dict[str, Any]] = {}
    for row in rows:
        key = (bool(row["confirmation"]), row["schedule"] or None)
        g = groups.setdefault(
            key,
            dict.fromkeys(_COUNTERS, 0)
            | {"max_value": None, "max_number": None, "min_value": None, "min_number": None},
        )
        for name, share in _shares(row).items():
            g[name] += share
        value, number = row["value"], int(row["number"])
        if row["state"] != "COMPLETE" or not _finite(value):
            continue
        if g["max_value"] is None or (value, -number) > (g["max_value"], -g["max_number"]):
            g["max_value"], g["max_number"] = float(value), number
        if g["min_value"] is None or (value, number) < (g["min_value"], g["min_number"]):
            g["min_value"], g["min_number"] = float(value), number
    return [
        Totals(confirmation=c, schedule=s, **g)
        for (c, s), g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]


def refresh_study(conn: Connection, study_id: int) -> None:
    """Recompute the study's totals from its summary rows (a full scan of them)."""
    conn.execute(study_aggregates.delete().where(_agg.study_id == study_id))
    totals = scan_totals(conn, study_id)
    if totals:
        conn.execute(
            study_aggregates.insert(),
            [
                {
                    **{k: v for k, v in t.__dict__.items() if k != "schedule"},
                    "study_id": study_id,
                    "schedule": t.schedule or "",
                }
                for t in totals
            ],
        )


def read_totals(conn: Connection, study_ids: Iterable[int]) -> dict[int, list[Totals]]:
    """The aggregates of each study, keyed by study id (one indexed query).

    Args:
        conn: A connection to the storage.
        study_ids: The studies (a page of them at most).

    Returns:
        ``{study_id: [Totals, ...]}``; a study without finished trials has an empty list.
    """
    ids = list(study_ids)
    out: dict[int, list[Totals]] = {i: [] for i in ids}
    if not ids:
        return out
    query = (
        sa.select(study_aggregates)
        .where(_agg.study_id.in_(ids))
        .order_by(_agg.study_id, _agg.confirmation, _agg.schedule)
    )
    for row in conn.execute(query):
        m = dict(row._mapping)
        sid = int(m.pop("study_id"))
        m["schedule"] = m["schedule"] or None
        m["confirmation"] = bool(m["confirmation"])
        out[sid].append(Totals(**m))
    return out


def unfinished_counts(
    conn: Connection, study_ids: Iterable[int]
) -> dict[int, tuple[dict[str, int], dict[str, int]]]:
    """RUNNING and WAITING trials per study, search trials and confirmations apart.

    Read from Optuna's ``trials``, the source of truth for states, through the
    partial index of revision 0003 over unfinished trials only.

    Returns:
        ``{study_id: (search {state: n}, confirmations {state: n})}``, only
        the states present.
    """
    ids = list(study_ids)
    out: dict[int, tuple[dict[str, int], dict[str, int]]] = {i: ({}, {}) for i in ids}
    if not ids:
        return out
    trials, ua = _optuna.trials, _optuna.trial_user_attrs.alias("conf")
    on_conf = sa.and_(ua.c.trial_id == trials.c.trial_id, ua.c.key == CONFIRMATION_OF)
    # Spelt as the index's predicate so that both planners use it.
    query = (
        sa.select(trials.c.study_id, STATE_TEXT, ua.c.key, sa.func.count())
        .select_from(trials.outerjoin(ua, on_conf))
        .where(trials.c.study_id.in_(ids), sa.text(f"trials.{UNFINISHED}"))
        .group_by(trials.c.study_id, STATE_TEXT, ua.c.key)
    )
    for sid, state, key, n in conn.execute(query):
        out[int(sid)][0 if key is None else 1][str(state)] = int(n)
    return out


def budget_of(
    record: StudyRecord,
    totals: list[Totals],
    unfinished: tuple[dict[str, int], dict[str, int]],
    *,
    confirm_pending: bool,
) -> BudgetCounts:
    """The study's :class:`BudgetCounts` from its aggregates and unfinished trials.

    The same numbers as :func:`storage.budget_counts` once every finished trial
    has its summary row (a crash between Optuna's ``tell`` and the row leaves a
    trial uncounted here until the stale sweep writes the row).
    """
    by_kind: list[dict[str, int]] = []
    retried = []
    for kind, waiting_running in zip((False, True), unfinished, strict=True):
        mine = [t for t in totals if t.confirmation == kind]
        states = {
            "COMPLETE": sum(t.n_complete for t in mine),
            "PRUNED": sum(t.n_pruned for t in mine),
            "FAIL": sum(t.n_fail for t in mine),
            **waiting_running,
        }
        by_kind.append({s: n for s, n in states.items() if n})
        retried.append(sum(t.n_retried for t in mine))
    by_state, confirm_by_state = by_kind
    return BudgetCounts(
        n_trials=record.n_trials,
        total=sum(by_state.values()),
        retried=retried[0],
        waiting=by_state.get("WAITING", 0),
        running=by_state.get("RUNNING", 0),
        finished=sum(by_state.get(s, 0) for s in FINISHED),
        by_state=by_state,
        confirm_by_state=confirm_by_state,
        confirm_retried=retried[1],
        confirm_pending=confirm_pending,
    )


def confirmation_marked(conn: Connection, study_ids: Iterable[int]) -> set[int]:
    """The studies whose confirmation trials were all enqueued (Optuna's study marker)."""
    ids = list(study_ids)
    if not ids:
        return set()
    sua = _optuna.study_user_attrs.c
    query = sa.select(sua.study_id).where(sua.study_id.in_(ids), sua.key == CONFIRMATION_MARKER)
    return {int(i) for i in conn.execute(query).scalars()}


def confirm_pending(record: StudyRecord, marked: set[int]) -> bool:
    """Whether the study has a confirmation phase whose trials are not enqueued yet."""
    spec = record.definition.confirm
    return spec is not None and spec.enabled and record.study_id not in marked


def best_of(totals: Iterable[Totals], direction: str) -> tuple[float, int] | None:
    """The best ``(value, number)`` over ``totals`` (ties: the lowest number)."""
    sign = -1.0 if direction == "maximize" else 1.0
    found = [b for b in (t.best(direction) for t in totals) if b is not None]
    return min(found, key=lambda b: (sign * b[0], b[1])) if found else None
