"""What a tenant has learnt about a task: its best schedules across all of its studies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lrsearch import storage
from lrsearch.service.deps import BackendDep, Reader
from lrsearch.service.openapi import API_PREFIX, problems
from lrsearch.service.schemas import CrossStudyBestOut, cross_study_out

router = APIRouter(prefix=f"{API_PREFIX}/schedules", tags=["results"])

TaskName = Annotated[
    str,
    Query(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1F\x7F]+$",
        description="The task the studies train (their definitions' `task`).",
    ),
]


@router.get(
    "/best",
    responses=problems(401, 403, 422),
    summary="Best schedules across a task's studies",
)
def get_best_across_studies(
    task: TaskName,
    principal: Reader,
    backend: BackendDep,
    top: Annotated[
        int, Query(ge=1, le=storage.MAX_CROSS_STUDY_TOP, description="Trials per schedule.")
    ] = 3,
) -> CrossStudyBestOut:
    """Per schedule type, the best complete trials of the caller's studies of ``task``.

    One bounded query, whatever the number of studies. Studies that maximize
    and studies that minimize are ranked apart (``direction``): their values
    are not comparable. Each trial comes with its study, value, epochs
    trained and its schedule as PyTorch takes it (learning rates absolute).
    An unknown task, or one without complete trials, gives an empty list.
    """
    with backend.engine.connect() as conn:
        groups = storage.best_across_studies(conn, tenant=principal.tenant, task=task, k=top)
    return cross_study_out(task, groups)
