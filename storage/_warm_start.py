"""Warm starts: a new study's first trials are the best configurations of earlier ones.

When a study whose definition has ``warm_start: {from, top_k}`` is created,
the ``top_k`` best COMPLETE trials of each schedule type across the source
studies (same tenant only: another tenant's study of the same name is as
invisible here as anywhere) are turned into configurations of the *new* space
and enqueued, best first, through :func:`enqueue_fixed`, so they count toward
the budget and are the first trials any worker or client claims.

Fitting a configuration to the new space, parameter by parameter:

* a numeric value outside the new bounds is clipped to them (noted);
* a categorical value the new space does not offer (a schedule type, a batch
  size, an optimizer, a weight init) skips the whole configuration (reason kept);
* a parameter the new space does not sample is dropped (noted); one it samples
  that the source did not is taken from the source's fixed value where there
  was one (``optimizer: sgd``, ``weight_decay: 0``, a fixed warm-up), else left
  to the sampler;
* an ``auto`` learning rate is left to the sampler, inside the range test's bounds.

What happened is stored in the Optuna study user attr ``warm_start``:
``{"from", "top_k", "enqueued": [...], "skipped": [{..., "reason"}]}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy as sa

from lrsearch.search_space import (
    ConfigError,
    ParamSpec,
    StudyDefinition,
    dimension_specs,
    schedule_param_specs,
    validate_partial_params,
)
from lrsearch.storage._claims import enqueue_fixed
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import StudyNotFoundError
from lrsearch.storage._studies import StudyRecord, read_study, read_study_by_id
from lrsearch.storage._summary import top_trials_per_schedule
from lrsearch.storage._tables import studies

__all__ = ["SAME_TASK_LIMIT", "WARM_START_ATTR", "stored_warm_start", "warm_start"]

WARM_START_ATTR = "warm_start"
# ``same_task`` reads at most this many of the tenant's newest studies of the task.
SAME_TASK_LIMIT = 100


@dataclass(frozen=True)
class _Candidate:
    study: str
    number: int
    value: float
    params: dict[str, Any]
    source: StudyDefinition


def warm_start(backend: Backend, study: optuna.Study, record: StudyRecord) -> dict[str, Any]:
    """Enqueue the warm-start configurations of a new study; store and return the report.

    Returns an empty dict when the definition asks for no warm start.
    """
    spec = record.definition.warm_start
    if spec is None:
        return {}
    sources, skipped = _sources(backend, record)
    enqueued: list[dict[str, Any]] = []
    for cand in _best(backend, sources, spec.top_k, record.definition.direction):
        origin = {"study": cand.study, "trial": cand.number, "value": cand.value}
        params, notes, reason = fit_params(record.definition, cand.params, cand.source)
        if reason is None and len(enqueued) >= record.n_trials:
            reason = f"the budget ({record.n_trials} trials) is already full"
        if reason is not None:
            skipped.append({**origin, "schedule": cand.params.get("schedule"), "reason": reason})
            continue
        enqueue_fixed(backend, study, record, params)
        enqueued.append({**origin, "params": params, "notes": notes})
    report = {
        "from": spec.sources,
        "top_k": spec.top_k,
        "enqueued": enqueued,
        "skipped": skipped,
    }
    backend.optuna_storage.set_study_user_attr(record.study_id, WARM_START_ATTR, report)
    return report


def stored_warm_start(backend: Backend, study_id: int) -> dict[str, Any] | None:
    """The stored warm-start report of the study, or ``None`` if it asked for none."""
    value = backend.optuna_storage.get_study_user_attrs(study_id).get(WARM_START_ATTR)
    return dict(value) if isinstance(value, dict) else None


def _sources(
    backend: Backend, record: StudyRecord
) -> tuple[list[StudyRecord], list[dict[str, Any]]]:
    spec = record.definition.warm_start
    assert spec is not None
    found: list[StudyRecord] = []
    skipped: list[dict[str, Any]] = []
    with backend.engine.connect() as conn:
        if isinstance(spec.sources, list):
            for name in spec.sources:
                try:
                    found.append(read_study(name, conn=conn, tenant=record.tenant))
                except StudyNotFoundError:
                    skipped.append({"study": name, "reason": "no study of that name"})
        else:
            ids = conn.execute(
                sa.select(studies.c.study_id)
                .where(
                    studies.c.tenant == record.tenant,
                    studies.c.task == record.task,
                    studies.c.study_id != record.study_id,
                )
                .order_by(studies.c.study_id.desc())
                .limit(SAME_TASK_LIMIT)
            ).scalars()
            found = [read_study_by_id(int(i), conn=conn) for i in ids]
    usable = []
    for src in found:
        reason = _unusable(src, record)
        if reason is None:
            usable.append(src)
        else:
            skipped.append({"study": src.name, "reason": reason})
    return usable, skipped


def _unusable(src: StudyRecord, record: StudyRecord) -> str | None:
    if src.definition_problem is not None:
        return f"its definition cannot be read: {src.definition_problem}"
    new, old = record.definition.objective, src.definition.objective
    if (old.metric, src.direction) != (new.metric, record.direction):
        # Values of another objective cannot be ranked with this study's.
        return (
            f"it optimises {old.metric} ({src.direction}), this study "
            f"{new.metric} ({record.direction})"
        )
    return None


def _best(
    backend: Backend, sources: list[StudyRecord], top_k: int, direction: str
) -> list[_Candidate]:
    """The ``top_k`` best trials of each schedule type across ``sources``, best first."""
    by_schedule: dict[str, list[_Candidate]] = {}
    sign = -1.0 if direction == "maximize" else 1.0
    with backend.engine.connect() as conn:
        for src in sources:
            for schedule, rows in top_trials_per_schedule(conn, src, k=top_k).items():
                for row in rows:
                    if row.value is None or not math.isfinite(row.value):
                        continue
                    cand = _Candidate(src.name, row.number, row.value, row.params, src.definition)
                    by_schedule.setdefault(schedule, []).append(cand)
    chosen = [
        c
        for cands in by_schedule.values()
        for c in sorted(cands, key=lambda c: (sign * c.value, c.study, c.number))[:top_k]
    ]
    return sorted(chosen, key=lambda c: (sign * c.value, c.study, c.number))


def fit_params(
    definition: StudyDefinition, params: dict[str, Any], source: StudyDefinition
) -> tuple[dict[str, Any], list[str], str | None]:
    """A source configuration as one of ``definition``'s space (rules in the module doc).

    Returns:
        ``(params, notes, reason)``: ``reason`` is set when the configuration is skipped.
    """
    schedule = params.get("schedule")
    space = definition.search_space
    if schedule not in space.schedules:
        return {}, [], f"schedule {schedule!r} is not in this study's schedules"
    specs: dict[str, ParamSpec] = {
        **dimension_specs(definition),
        **{f"{schedule}.{k}": v for k, v in schedule_param_specs(definition, schedule).items()},
    }
    implied: dict[str, Any] = {"optimizer": "sgd", "weight_decay": 0.0}
    if schedule != "warmup":
        implied["warmup_epochs"] = source.warmup_bounds()[0]
    else:
        specs.pop("warmup_epochs", None)  # a warm-up schedule never takes a prefix
    known = set(specs)
    notes: list[str] = []
    if definition.learning_rate_auto:
        specs.pop("learning_rate")
        notes.append("learning_rate: sampled inside the LR range test's bounds (auto)")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in params and name not in implied:
            notes.append(f"{name}: not in the source configuration, sampled")
            continue
        value = params.get(name, implied.get(name))
        if name == "batch_size":
            if value not in space.batch_size:
                return {}, [], f"batch_size {value} is not one of {space.batch_size}"
            out[name] = value
        elif spec.kind == "categorical":
            if value not in spec.choices:
                return {}, [], f"{name} {value!r} is not one of {list(spec.choices)}"
            out[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return {}, [], f"{name} {value!r} is not a number"
            fitted: float = value
            if spec.low is not None:
                fitted = max(fitted, spec.low)
            if spec.high is not None:
                fitted = min(fitted, spec.high)
            fitted = round(fitted) if spec.kind == "int" else float(fitted)
            if fitted != value:
                notes.append(f"{name}: {value} clipped to {fitted}")
            out[name] = fitted
    notes += [f"{n}: not sampled by this study, dropped" for n in params if n not in known]
    try:
        out = validate_partial_params(definition, out)
    except ConfigError as exc:  # a rule fit_params does not know: skip, never guess
        return {}, [], str(exc)
    return out, notes, None
