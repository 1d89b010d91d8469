"""The trial protocol: a client's own training code claims and runs a study's trials.

Claim, report every epoch (the answer says whether to prune), and complete,
fail or release; heartbeat between reports. Each request body carries the
``client_id`` that holds the trial's lease (see :mod:`storage._protocol`).
Needs a ``submit`` key of the study's tenant; another tenant's study is 404.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import optuna
from fastapi import APIRouter, Depends, Path, Request, Response

from lrsearch import storage
from lrsearch.service.deps import BackendDep, SettingsDep, WritableStudy
from lrsearch.service.openapi import API_PREFIX, problems
from lrsearch.service.protocol_schemas import (
    AliveOut,
    ClaimedOut,
    ClientIn,
    CompleteIn,
    FailIn,
    FinishedOut,
    PruneOut,
    ReportIn,
)

router = APIRouter(prefix=f"{API_PREFIX}/studies/{{name}}/trials", tags=["trial protocol"])

Number = Annotated[int, Path(ge=0, le=2**31 - 1, description="The trial's number.")]
_ERRORS = problems(401, 403, 404, 409, 413, 422)
_NOTHING_LEFT: dict[int | str, dict[str, Any]] = {
    204: {"description": "Nothing to run: budget taken, paused or cancelled."}
}


class _StudyCache:
    """One Optuna study object per study, kept for the app's life.

    The sampler must live across claims: a seeded sampler built afresh for
    every request would propose the same configuration every time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._studies: dict[int, optuna.Study] = {}

    def get(self, backend: storage.Backend, record: storage.StudyRecord) -> optuna.Study:
        with self._lock:
            study = self._studies.get(record.study_id)
            if study is None:
                # A sampler slot of its own, like a worker's: the service and the
                # workers do not propose the same configurations from one seed,
                # and a restarted service does not depend on its process id.
                salt = storage.sampler_slot(backend, record)
                study = storage.load_optuna_study(backend, record, seed_salt=salt)
                self._studies[record.study_id] = study
            return study


def _optuna_study(request: Request, record: WritableStudy, backend: BackendDep) -> optuna.Study:
    state = request.app.state
    with _CACHE_GUARD:
        cache = getattr(state, "protocol_studies", None)
        if cache is None:
            cache = state.protocol_studies = _StudyCache()
    return cache.get(backend, record)


_CACHE_GUARD = threading.Lock()
OptunaStudy = Annotated[optuna.Study, Depends(_optuna_study)]


@router.post(
    "/claim",
    status_code=201,
    response_model=ClaimedOut,
    responses={**_NOTHING_LEFT, **_ERRORS},
    summary="Claim a trial to run",
)
def claim(
    body: ClientIn,
    record: WritableStudy,
    study: OptunaStudy,
    backend: BackendDep,
    settings: SettingsDep,
) -> ClaimedOut | Response:
    """Hand the next trial to ``client_id``: its params and resolved configuration.

    Answers 204 (no body) when there is nothing to run now; a client then stops.
    """
    claimed = storage.claim_for_client(
        backend, study, record, client_id=body.client_id, grace_s=settings.grace_s
    )
    if claimed is None:
        return Response(status_code=204)
    config = claimed.config
    return ClaimedOut(
        number=claimed.number,
        params=claimed.params,
        config=storage.absolute_config(config),
        trial_config=config.model_dump(mode="json"),
        max_epochs=config.max_epochs,
        heartbeat_s=settings.heartbeat_s,
        objective=record.definition.objective.metric,
        direction="maximize" if record.direction == "maximize" else "minimize",
        confirmation_of=claimed.confirmation_of,
    )


@router.post("/{number}/reports", responses=_ERRORS, summary="Report an epoch's objective")
def report(
    number: Number, body: ReportIn, record: WritableStudy, study: OptunaStudy, backend: BackendDep
) -> PruneOut:
    """Record the objective after ``epoch``; ``prune: true`` means stop (the trial is PRUNED).

    Also a heartbeat. Resending the same epoch changes nothing and answers the
    same. 409 when the caller does not hold the trial: stop working on it.
    """
    prune = storage.report_epoch(
        backend,
        study,
        record,
        number,
        client_id=body.client_id,
        epoch=body.epoch,
        value=body.value,
        lr=body.lr,
        metrics=body.metrics,
    )
    return PruneOut(prune=prune)


@router.post("/{number}/heartbeat", responses=_ERRORS, summary="Keep a trial alive")
def trial_heartbeat(
    number: Number, body: ClientIn, record: WritableStudy, backend: BackendDep
) -> AliveOut:
    """Tell the service the client still runs the trial; 409 when it lost the trial."""
    storage.check_lease(backend, record, number, body.client_id)
    return AliveOut()


@router.post("/{number}/complete", responses=_ERRORS, summary="Finish a trial")
def complete(
    number: Number, body: CompleteIn, record: WritableStudy, study: OptunaStudy, backend: BackendDep
) -> FinishedOut:
    """Finish the trial COMPLETE with ``value`` (default: the last reported objective)."""
    done = storage.complete_trial(
        backend, study, record, number, client_id=body.client_id, value=body.value
    )
    return FinishedOut.model_validate(done, from_attributes=True)


@router.post("/{number}/fail", responses=_ERRORS, summary="Fail a trial")
def fail(
    number: Number, body: FailIn, record: WritableStudy, study: OptunaStudy, backend: BackendDep
) -> FinishedOut:
    """Finish the trial FAIL with ``error`` as its reason; it is not retried."""
    done = storage.fail_trial(
        backend, study, record, number, client_id=body.client_id, error=body.error
    )
    return FinishedOut.model_validate(done, from_attributes=True)


@router.post("/{number}/release", status_code=204, responses=_ERRORS, summary="Hand a trial back")
def release(
    number: Number, body: ClientIn, record: WritableStudy, study: OptunaStudy, backend: BackendDep
) -> None:
    """Give the trial back unfinished (e.g. on Ctrl-C): it is retried, like a stopped worker's."""
    storage.release_trial(backend, study, record, number, client_id=body.client_id)
