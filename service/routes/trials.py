"""A study's trials: enqueue a fixed configuration, list them, read one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.exceptions import RequestValidationError

from lrsearch import storage
from lrsearch.search_space import (
    ConfigError,
    Problem,
    validate_fixed_params,
    validate_partial_params,
)
from lrsearch.service.deps import BackendDep, ReadableStudy, WritableStudy
from lrsearch.service.openapi import API_PREFIX, problems
from lrsearch.service.schemas import (
    EnqueuedOut,
    EnqueueIn,
    TrialDetailOut,
    TrialPage,
    TrialStateName,
    trial_detail_out,
    trial_out,
)

router = APIRouter(prefix=f"{API_PREFIX}/studies/{{name}}/trials", tags=["trials"])


@router.post(
    "",
    status_code=202,
    responses=problems(401, 403, 404, 409, 413, 422),
    summary="Enqueue a fixed configuration",
)
def enqueue_trial(body: EnqueueIn, record: WritableStudy, backend: BackendDep) -> EnqueuedOut:
    """Queue a configuration (e.g. your current schedule, as a baseline) ahead of sampled ones.

    It is checked against the study's search space (422 listing every bad
    parameter) and counts toward the budget (409 when the budget is taken).
    With ``partial: true`` only the parameters given are fixed; the trial's
    sampler draws the others.
    """
    try:
        if body.partial:
            params = validate_partial_params(record.definition, body.params)
        else:
            config = validate_fixed_params(record.definition, body.params)
            # The validated values, typed (e.g. 5.0 -> 5 for an integer parameter).
            params = {k: v for k, v in config.to_params().items() if k in body.params}
    except ConfigError as exc:
        # Paths relative to the request body, like every other validation error.
        raise ConfigError([Problem(("params", *p.loc), p.msg) for p in exc.problems]) from None
    if record.state == "cancelled":
        raise storage.InvalidStateError(f"study {record.name!r} is cancelled")
    study = storage.load_optuna_study(backend, record)
    storage.enqueue_fixed(backend, study, record, params)
    return EnqueuedOut(study=record.name, params=params)


ScheduleName = Literal["step", "exponential", "cosine", "plateau", "cyclic", "warmup"]


@router.get("", responses=problems(401, 403, 404, 422), summary="List trials")
def get_trials(
    record: ReadableStudy,
    backend: BackendDep,
    state: Annotated[
        list[TrialStateName] | None, Query(description="Only these states (repeatable).")
    ] = None,
    schedule: Annotated[
        list[ScheduleName] | None, Query(description="Only these schedule types (repeatable).")
    ] = None,
    sort: Annotated[
        storage.TrialSort | None,
        Query(description="`number`, `value`, `state` or `schedule`; ties by number."),
    ] = None,
    order: Annotated[
        Literal["asc", "desc", "number", "value"] | None,
        Query(
            description="`asc` or `desc` (default: `value` best first by the study's "
            "direction, the others ascending). Without `sort`, `number` or `value` name "
            "the sort, best first for `value`."
        ),
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=storage.MAX_PAGE_SIZE)] = 50,
) -> TrialPage:
    """A page of the study's trials, filtered by state and schedule type, sorted, keyset-paged."""
    if order in ("number", "value"):
        if sort is not None:
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("query", "order"),
                        "msg": "with `sort`, `order` must be `asc` or `desc`",
                        "input": order,
                    }
                ]
            )
        sort, order = order, None
    with backend.engine.connect() as conn:
        rows, next_cursor = storage.list_trial_page(
            conn,
            record,
            states=state or None,
            schedules=schedule or None,
            sort=sort or "number",
            order=order if order in ("asc", "desc") else None,
            cursor=cursor,
            limit=limit,
        )
    return TrialPage(items=[trial_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/{number}", responses=problems(401, 403, 404, 422), summary="One trial in full")
def get_trial(
    record: ReadableStudy,
    backend: BackendDep,
    number: Annotated[int, Path(ge=0, le=2**31 - 1)],
) -> TrialDetailOut:
    """Params, learning curve (intermediate values), ``lr_curve``, metrics, error, worker."""
    return trial_detail_out(storage.trial_detail(backend, record, number))
