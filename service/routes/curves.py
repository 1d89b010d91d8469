"""What the dashboard reads beside the result endpoints: who am I, curves, a scatter sample.

Every answer is bounded whatever the study's size: the curves of the top few
trials per schedule plus a few recent pruned ones, and an evenly spread
sample of (learning rate, value) points.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from lrsearch import storage
from lrsearch.service.deps import INT32_MAX, BackendDep, ReadableStudy, Reader
from lrsearch.service.openapi import API_PREFIX, problems
from lrsearch.storage._results import TrialRow, finite_or_none

router = APIRouter(prefix=API_PREFIX, tags=["dashboard"])

MAX_PER_SCHEDULE = 10
MAX_PRUNED = 50
_NUMBERS_PATTERN = r"^\d{1,10}(,\d{1,10})*$"

CurveGroup = Literal["top", "pruned", "requested"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class WhoAmIOut(_Out):
    tenant: str
    scope: Literal["read", "submit", "admin"]


class CurveOut(_Out):
    number: int
    group: CurveGroup = Field(
        description="`top`: among the best complete trials of its schedule; `pruned`: a "
        "recent pruned trial; `requested`: named in `numbers`."
    )
    state: str
    schedule: str | None
    value: float | None
    learning_rate: float | None
    epochs: list[int] = Field(description="Epochs (steps) with a reported value.")
    values: list[float | None] = Field(description="The objective at each of `epochs`.")
    lr_curve: list[float | None] = Field(description="Learning rate used in each epoch.")


class CurvesOut(_Out):
    study: str
    items: list[CurveOut] = Field(
        description="`top` trials best first per schedule, then the rest."
    )


class ScatterOut(_Out):
    study: str
    total: int = Field(description="Finished trials with a value; the columns hold a sample.")
    numbers: list[int]
    learning_rates: list[float]
    values: list[float]
    schedules: list[str | None]
    states: list[str]


def _finite_list(values: list[float]) -> list[float | None]:
    return [finite_or_none(v) for v in values]


def _parse_numbers(raw: str) -> list[int]:
    numbers = sorted({int(n) for n in raw.split(",")})
    problems = []
    if len(numbers) > storage.MAX_CURVES:
        problems.append(f"at most {storage.MAX_CURVES} trial numbers per request")
    too_big = [n for n in numbers if n > INT32_MAX]
    if too_big:
        # Trial numbers are 32-bit INTEGERs; a larger one cannot name a trial.
        problems.append(f"trial numbers must be at most {INT32_MAX}, got {too_big[:5]}")
    if problems:
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": ("query", "numbers"), "msg": msg, "input": raw[:40]}
                for msg in problems
            ]
        )
    return numbers


@router.get("/whoami", responses=problems(401), summary="The caller's tenant and scope")
def whoami(principal: Reader) -> WhoAmIOut:
    """What the API key may do, so that clients show only the controls it allows."""
    return WhoAmIOut(tenant=principal.tenant, scope=principal.scope)


@router.get(
    "/studies/{name}/curves",
    responses=problems(401, 403, 404, 422),
    summary="Learning and LR curves of a bounded set of trials",
)
def get_curves(
    record: ReadableStudy,
    backend: BackendDep,
    per_schedule: Annotated[
        int, Query(ge=0, le=MAX_PER_SCHEDULE, description="Best complete trials per schedule.")
    ] = 3,
    pruned: Annotated[
        int, Query(ge=0, le=MAX_PRUNED, description="Most recent pruned trials.")
    ] = 10,
    numbers: Annotated[
        str | None,
        Query(
            pattern=_NUMBERS_PATTERN,
            description="Comma-separated trial numbers; when given, only these are returned.",
        ),
    ] = None,
) -> CurvesOut:
    """Per-epoch objective and ``lr_curve`` of a few trials, in a constant number of queries."""
    chosen: list[tuple[TrialRow | None, int, CurveGroup]] = []
    with backend.engine.connect() as conn:
        if numbers is not None:
            wanted = _parse_numbers(numbers)
            rows = storage.trials_by_number(conn, record, wanted)
            chosen = [(rows.get(n), n, "requested") for n in wanted]
        else:
            top = storage.top_trials_per_schedule(conn, record, k=per_schedule)
            chosen = [(row, row.number, "top") for rows in top.values() for row in rows]
            recent = storage.recent_trials(conn, record, states=("PRUNED",), limit=pruned)
            chosen += [(row, row.number, "pruned") for row in recent]
        chosen = chosen[: storage.MAX_CURVES]
        data = storage.curves(conn, record, [n for _, n, _ in chosen])
    items = []
    for row, number, group in chosen:
        curve = data.get(number)
        if curve is None:
            continue
        steps = curve["intermediate_values"]
        items.append(
            CurveOut(
                number=number,
                group=group,
                state=str(curve["state"]),
                schedule=row.schedule if row is not None else None,
                value=row.value if row is not None else None,
                learning_rate=row.learning_rate if row is not None else None,
                epochs=list(steps),
                values=_finite_list(list(steps.values())),
                lr_curve=_finite_list(curve["lr_curve"]),
            )
        )
    return CurvesOut(study=record.name, items=items)


@router.get(
    "/studies/{name}/scatter",
    responses=problems(401, 403, 404, 422),
    summary="Final value against learning rate, sampled",
)
def get_scatter(
    record: ReadableStudy,
    backend: BackendDep,
    limit: Annotated[int, Query(ge=1, le=storage.MAX_SCATTER_POINTS)] = 2000,
) -> ScatterOut:
    """Up to ``limit`` complete or pruned trials, spread evenly over the study, as columns."""
    with backend.engine.connect() as conn:
        sample = storage.scatter_sample(conn, record, limit=limit)
    return ScatterOut(
        study=record.name,
        total=sample.total,
        numbers=sample.numbers,
        learning_rates=sample.learning_rates,
        values=sample.values,
        schedules=sample.schedules,
        states=sample.states,
    )
