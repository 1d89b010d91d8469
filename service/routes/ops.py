"""Operations: health check (no key needed) and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from lrsearch.service.deps import BackendDep, Reader
from lrsearch.service.metrics import CONTENT_TYPE
from lrsearch.service.openapi import API_PREFIX, problems
from lrsearch.service.schemas import HealthOut

router = APIRouter(prefix=API_PREFIX, tags=["operations"])


@router.get("/healthz", responses=problems(503), summary="Liveness and database check")
def healthz(backend: BackendDep) -> HealthOut:
    """``ok`` when the database answers ``SELECT 1``; 503 otherwise."""
    with backend.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).scalar_one()
    return HealthOut(status="ok", database="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **problems(401),
    },
    summary="Prometheus metrics",
)
def metrics(request: Request, _caller: Reader) -> Response:
    """Requests and latency by route template, trials and studies by state: Prometheus text.

    Needs an API key of any scope and any tenant (give Prometheus a read key:
    ``authorization: {credentials: lrs_...}``). Every number is a total over all
    tenants; trial and study counts are at most ``LRSEARCH_METRICS_REFRESH_S``
    seconds old.
    """
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
