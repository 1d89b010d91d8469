"""Create, list, read and control studies."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response

from lrsearch import storage
from lrsearch.search_space import parse_definition
from lrsearch.service.deps import (
    INT32_MAX,
    BackendDep,
    ReadableStudy,
    Reader,
    StudyName,
    Submitter,
    WritableStudy,
)
from lrsearch.service.errors import BadCursorError
from lrsearch.service.openapi import API_PREFIX, CREATE_STUDY_OPERATION, problems
from lrsearch.service.schemas import StudyOut, StudyPage, study_brief, study_out

router = APIRouter(prefix=f"{API_PREFIX}/studies", tags=["studies"])
_CURSOR_PREFIX = "studies:"


def _encode_cursor(study_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{study_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(_CURSOR_PREFIX)
    # Study ids are 32-bit INTEGERs: a larger forged id would overflow the column.
    if not (text.startswith(_CURSOR_PREFIX) and number.isdigit() and int(number) <= INT32_MAX):
        raise BadCursorError(f"invalid cursor {cursor[:40]!r} for the study list")
    return int(number)


def _out(backend: storage.Backend, record: storage.StudyRecord) -> StudyOut:
    with backend.engine.connect() as conn:
        summary = storage.study_summary(conn, record)
        infeasible = storage.infeasible_batches(conn, record.study_id)
    return study_out(
        record,
        summary,
        storage.stored_lr_range(backend, record.study_id),
        infeasible,
        storage.stored_warm_start(backend, record.study_id),
    )


@router.post(
    "",
    status_code=201,
    operation_id=CREATE_STUDY_OPERATION,
    responses=problems(401, 403, 409, 413, 422),
    summary="Create a study from a definition",
)
def create_study(
    data: Annotated[dict[str, Any], Body(description="A study definition.")],
    principal: Submitter,
    backend: BackendDep,
    request: Request,
    response: Response,
) -> StudyOut:
    """Validate the definition, create the Optuna study and store the definition with it.

    Every problem of the definition is reported at once (422); a taken name is
    a 409. Nothing is left behind when creation fails.
    """
    definition = parse_definition(data, known_tasks=request.app.state.known_tasks)
    record = storage.create_study(backend, definition, tenant=principal.tenant)
    response.headers["Location"] = f"{request.url.path}/{record.name}"
    return _out(backend, record)


@router.get("", responses=problems(401, 403, 422), summary="List studies, newest first")
def list_studies(
    principal: Reader,
    backend: BackendDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the last page.")
    ] = None,
) -> StudyPage:
    """The caller's tenant's studies, newest first, a page at a time.

    Each with its trials per state, finished trials and best value, read for
    the whole page at once (a few queries, however long the page).
    """
    before = _decode_cursor(cursor) if cursor is not None else None
    records = storage.list_studies(
        backend, tenant=principal.tenant, limit=limit + 1, before_id=before
    )
    more = len(records) > limit
    records = records[:limit]
    next_cursor = _encode_cursor(records[-1].study_id) if more else None
    with backend.engine.connect() as conn:
        progress = storage.study_progress(conn, records)
    items = [study_brief(r, progress[r.study_id]) for r in records]
    return StudyPage(items=items, next_cursor=next_cursor)


@router.get("/{name}", responses=problems(401, 403, 404), summary="One study and its progress")
def get_study(record: ReadableStudy, backend: BackendDep) -> StudyOut:
    """Definition, state, trial counts per state, best trial, epochs spent and saved."""
    return _out(backend, record)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404, 422),
    summary="Delete a study and its trials",
)
def delete_study(name: StudyName, principal: Submitter, backend: BackendDep) -> Response:
    """Delete the study, its trials and results, for good; the name is free again.

    Needs a submit (or admin) key of the study's tenant; another tenant's study
    is not found. Workers running its trials drop them.
    """
    storage.delete_study(backend, name, tenant=principal.tenant)
    return Response(status_code=204)


def _control(action: Literal["pause", "resume", "cancel"], doc: str) -> None:
    def endpoint(record: WritableStudy, backend: BackendDep) -> StudyOut:
        updated = storage.change_state(backend, record.name, action, tenant=record.tenant)
        return _out(backend, updated)

    endpoint.__doc__ = doc
    router.add_api_route(
        f"/{{name}}/{action}",
        endpoint,
        methods=["POST"],
        response_model=StudyOut,
        name=f"{action}_study",
        operation_id=f"{action}_study",
        summary=f"{action.capitalize()} a study",
        responses=problems(401, 403, 404, 409),
    )


_control("pause", "Stop handing out new trials; running trials finish. 409 unless running.")
_control("resume", "Hand out trials again. 409 unless paused.")
_control("cancel", "Stop the study for good; running trials finish. 409 if already cancelled.")
