"""Analysis views of a study: history, parameters, failures, and its note.

Each read is bounded whatever the study's size (samples of at most
``limit`` trials; the best-so-far steps; the few most common errors).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from lrsearch import storage
from lrsearch.service.analysis_schemas import (
    MAX_NOTE_CHARS,
    ErrorCountOut,
    FailuresOut,
    HistoryOut,
    NoteIn,
    NoteOut,
    ParamsOut,
)
from lrsearch.service.deps import BackendDep, ReadableStudy, WritableStudy
from lrsearch.service.openapi import API_PREFIX, problems

router = APIRouter(prefix=f"{API_PREFIX}/studies/{{name}}", tags=["dashboard"])

Limit = Annotated[int, Query(ge=1, le=storage.MAX_ANALYSIS_POINTS)]
_ALLOWED_CONTROLS = frozenset("\t\n\r")


@router.get(
    "/history", responses=problems(401, 403, 404, 422), summary="Best value so far, sampled"
)
def get_history(record: ReadableStudy, backend: BackendDep, limit: Limit = 2000) -> HistoryOut:
    """Best-so-far steps and a sample of finished trials, by trial number and epochs spent."""
    with backend.engine.connect() as conn:
        h = storage.history(conn, record, limit=limit)
    return HistoryOut(
        study=record.name,
        total=h.total,
        numbers=h.numbers,
        values=h.values,
        states=h.states,
        epochs=h.epochs,
        best_numbers=h.record_numbers,
        best_values=h.record_values,
        best_epochs=h.record_epochs,
    )


@router.get(
    "/params",
    responses=problems(401, 403, 404, 422),
    summary="Sampled parameters and final values of complete trials",
)
def get_params(
    record: ReadableStudy,
    backend: BackendDep,
    schedule: Annotated[
        Literal["step", "exponential", "cosine", "plateau", "cyclic", "warmup"] | None,
        Query(description="Only trials of this schedule type (with its own parameters)."),
    ] = None,
    limit: Limit = 2000,
) -> ParamsOut:
    """Up to ``limit`` complete trials as columns, for parallel coordinates and slices."""
    with backend.engine.connect() as conn:
        s = storage.param_sample(conn, record, schedule=schedule, limit=limit)
    return ParamsOut(
        study=record.name,
        schedule=schedule,
        total=s.total,
        numbers=s.numbers,
        values=s.values,
        schedules=s.schedules,
        params=s.params,
    )


@router.get("/failures", responses=problems(401, 403, 404, 422), summary="Failed trials and why")
def get_failures(
    record: ReadableStudy,
    backend: BackendDep,
    top: Annotated[int, Query(ge=1, le=storage.MAX_ERRORS)] = 3,
) -> FailuresOut:
    """How many trials failed and the ``top`` most common error messages."""
    with backend.engine.connect() as conn:
        failed, errors = storage.failure_summary(conn, record, top=top)
    return FailuresOut(
        study=record.name,
        failed=failed,
        errors=[ErrorCountOut(message=e.message, count=e.count, example=e.example) for e in errors],
    )


@router.get("/note", responses=problems(401, 403, 404), summary="The study's note")
def get_note(record: ReadableStudy, backend: BackendDep) -> NoteOut:
    """The study's markdown note, as optuna-dashboard stores it; empty without one."""
    with backend.engine.connect() as conn:
        body, version = storage.read_note(conn, record)
    return NoteOut(study=record.name, body=body, version=version)


def _note_problems(body: str) -> list[str]:
    found = []
    if len(body) > MAX_NOTE_CHARS:
        found.append(f"at most {MAX_NOTE_CHARS} characters, got {len(body)}")
    bad = sorted(
        {
            f"U+{ord(c):04X}"
            for c in body
            if unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS
        }
    )
    if bad:
        found.append(f"control characters are not allowed: {', '.join(bad[:10])}")
    return found


@router.put("/note", responses=problems(401, 403, 404, 413, 422), summary="Save the study's note")
def put_note(body: NoteIn, record: WritableStudy, backend: BackendDep) -> NoteOut:
    """Replace the study's note (submit or admin key); optuna-dashboard shows it too.

    A note over the size limit or with control characters (other than tab and
    newline) is a 422 listing every problem.
    """
    found = _note_problems(body.body)
    if found:
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": ("body", "body"), "msg": msg, "input": None}
                for msg in found
            ]
        )
    version = storage.write_note(backend, record, body.body)
    return NoteOut(study=record.name, body=body.body, version=version)
