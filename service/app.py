"""The app factory: ``create_app(settings)`` wires settings, storage, routes and errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from lrsearch import storage
from lrsearch.service.errors import HANDLED, handle_error
from lrsearch.service.importance import ImportanceCache
from lrsearch.service.metrics import Metrics, StorageCounts
from lrsearch.service.middleware import BodyLimitMiddleware, RequestContextMiddleware
from lrsearch.service.openapi import API_PREFIX, build_openapi
from lrsearch.service.routes import (
    analysis,
    code,
    curves,
    dashboard,
    docs,
    keys,
    ops,
    protocol,
    results,
    schedules,
    studies,
    trials,
)
from lrsearch.service.settings import Settings

log = logging.getLogger(__name__)

TASK_ENTRY_POINTS = "lrsearch.tasks"
_DESCRIPTION = """\
Hyperparameter search over learning-rate schedules. Submit a study definition,
let workers run its trials, and read back the best schedules.

Every `/api/v1` path except `healthz` needs an API key
(`Authorization: Bearer lrs_...`, from `lrsearch keys create`). Scopes:
`read` (GET), `submit` (create, control, enqueue), `admin` (keys). Errors are
RFC 9457 `application/problem+json`; validation errors list every
`{loc, msg}` in `errors`.
"""


def registered_tasks() -> frozenset[str]:
    """Names of the tasks installed under the ``lrsearch.tasks`` entry points."""
    return frozenset(ep.name for ep in entry_points(group=TASK_ENTRY_POINTS))


class _StaleSweeper:
    """Fails and retries trials whose worker died, even when no worker is left to notice.

    Workers sweep the studies they serve; this covers studies all of whose
    workers are gone. Once per grace period, on a daemon thread.
    """

    def __init__(self, backend: storage.Backend, grace_s: float) -> None:
        self._backend = backend
        self._grace_s = grace_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stale-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._grace_s):
            try:
                failed = storage.sweep_stale_trials(self._backend, grace_s=self._grace_s)
            except Exception:
                # A database outage must not kill the sweeper; it tries again next period.
                log.warning("stale-trial sweep failed", exc_info=True)
                continue
            for study, numbers in failed.items():
                log.warning("study %s: stale trials %s failed and retried", study, numbers)


def _operation_id(route: APIRoute) -> str:
    return route.name


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.auth_disabled:
        log.warning(
            "API keys are NOT checked (LRSEARCH_AUTH_DISABLED): every caller is admin of tenant %r",
            storage.DEFAULT_TENANT,
        )
    backend = await run_in_threadpool(
        storage.open_backend, settings.storage, pool_size=settings.pool_size
    )
    app.state.backend = backend
    app.state.known_tasks = registered_tasks()
    log.info("lrsearch service on %s storage", backend.dialect)
    sweeper = _StaleSweeper(backend, settings.grace_s)
    sweeper.start()
    try:
        yield
    finally:
        sweeper.stop()
        app.state.backend = None
        await run_in_threadpool(backend.dispose)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the REST service.

    Args:
        settings: What to serve and how; ``None`` reads ``LRSEARCH_*`` from the
            environment now. The storage is opened when the app starts (its
            lifespan) and closed when it stops.

    Returns:
        The FastAPI app, with the API under ``/api/v1``, ``/healthz`` and
        ``/metrics`` also at the root, and the docs at ``/docs``.
    """
    settings = settings if settings is not None else Settings()
    app = FastAPI(
        title="lrsearch",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=_lifespan,
        generate_unique_id_function=_operation_id,
        separate_input_output_schemas=False,
        # Our own /docs (service.routes.docs) serves Swagger UI without a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.backend = None
    app.state.known_tasks = frozenset()
    app.state.importance_cache = ImportanceCache(settings.importance_cache_size)

    def storage_counts() -> StorageCounts | None:
        backend: storage.Backend | None = app.state.backend
        if backend is None:
            return None
        with backend.engine.connect() as conn:
            return StorageCounts(
                trials=storage.trial_counts_by_state(conn),
                studies=storage.study_counts_by_state(conn),
            )

    metrics = Metrics(storage_counts, refresh_s=settings.metrics_refresh_s)
    app.state.metrics = metrics

    # Each router carries the full /api/v1 prefix, so the route templates that
    # label the metrics are the public paths.
    for module in (
        studies,
        trials,
        code,
        protocol,
        results,
        schedules,
        curves,
        analysis,
        keys,
        ops,
    ):
        app.include_router(module.router)
    app.include_router(dashboard.router)  # "/" and /static/*, hidden from the API docs
    app.include_router(docs.router)  # /docs and its Swagger UI files
    # Probes and scrapers look at the root; same handlers, kept out of the docs.
    for route in ops.router.routes:
        if isinstance(route, APIRoute):
            app.add_api_route(
                route.path.removeprefix(API_PREFIX),
                route.endpoint,
                methods=sorted(route.methods or ()),
                response_class=route.response_class,
                name=f"root_{route.name}",
                include_in_schema=False,
            )

    for exc_class in HANDLED:
        app.add_exception_handler(exc_class, handle_error)
    # Added last = outermost: ids and metrics cover the 413s too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app
