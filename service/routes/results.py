"""What a study found: the best trial, the best schedules, parameter importance."""

from __future__ import annotations

from fastapi import APIRouter

from lrsearch import storage
from lrsearch.service.deps import BackendDep, ImportanceCacheDep, ReadableStudy, SettingsDep
from lrsearch.service.importance import (
    IMPORTANCE_SAMPLE,
    compute_importance,
    reliability_warning,
)
from lrsearch.service.openapi import API_PREFIX, problems
from lrsearch.service.schemas import (
    BestOut,
    ImportanceOut,
    SchedulesOut,
    schedule_stats_out,
    trial_out,
)

router = APIRouter(prefix=f"{API_PREFIX}/studies/{{name}}", tags=["results"])


@router.get("/best", responses=problems(401, 403, 404), summary="The best trial")
def get_best(record: ReadableStudy, backend: BackendDep) -> BestOut:
    """The best completed trial by the study's direction; ``trial`` is null until one completes."""
    with backend.engine.connect() as conn:
        best = storage.best_trial(conn, record)
    return BestOut(study=record.name, trial=trial_out(best) if best is not None else None)


@router.get("/schedules", responses=problems(401, 403, 404), summary="Best trial per schedule")
def get_schedules(record: ReadableStudy, backend: BackendDep) -> SchedulesOut:
    """For each schedule type: its best trial, completed/pruned/failed counts, median value.

    Once the study's confirmation phase has run, each type also has its confirmed
    mean (with spread and n), and the types are ranked by it.
    """
    with backend.engine.connect() as conn:
        board = storage.confirmed_leaderboard(conn, record)
    items = [schedule_stats_out(e.stats, record.definition, e.confirmed) for e in board]
    return SchedulesOut(study=record.name, items=items)


@router.get("/importance", responses=problems(401, 403, 404, 409), summary="Parameter importance")
def get_importance(
    record: ReadableStudy,
    backend: BackendDep,
    settings: SettingsDep,
    cache: ImportanceCacheDep,
) -> ImportanceOut:
    """How much each parameter mattered, by Optuna's importance evaluator.

    Only parameters every completed trial has are ranked (the schedule's own
    parameters exist only for that schedule). 409 until two trials complete.
    Big studies are ranked on an evenly spread sample of their completed
    trials (``n_trials`` says how many). The result is cached until more
    trials of the study complete.
    """
    with backend.engine.connect() as conn:
        # From the study's running totals: a few rows whatever its size.
        n_complete = storage.study_summary(conn, record).counts["COMPLETE"]
    result = cache.get(record.study_id, n_complete)
    if result is None:
        result = compute_importance(
            backend,
            record,
            n_complete=n_complete,
            evaluator=settings.importance_evaluator,
        )
        cache.put(record.study_id, n_complete, result)
    return ImportanceOut(
        study=record.name,
        evaluator=result.evaluator,
        n_complete=result.n_complete,
        n_trials=min(result.n_complete, IMPORTANCE_SAMPLE),
        warning=reliability_warning(result.n_complete),
        importances=result.importances,
        notes=result.notes,
    )
