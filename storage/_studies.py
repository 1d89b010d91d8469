"""Creating, finding and controlling studies: Optuna's study plus our record of it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.search_space import StudyDefinition, make_pruner, make_sampler, parse_definition
from lrsearch.storage._clock import db_now
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import InvalidStateError, StudyAlreadyExistsError, StudyNotFoundError
from lrsearch.storage._tables import studies

log = logging.getLogger(__name__)

StudyState = Literal["running", "paused", "cancelled"]
DEFAULT_TENANT = "default"

_TRANSITIONS: dict[str, dict[str, StudyState]] = {
    "pause": {"running": "paused"},
    "resume": {"paused": "running"},
    "cancel": {"running": "cancelled", "paused": "cancelled"},
}


@dataclass(frozen=True)
class StudyRecord:
    """Our row for one study. ``state`` is the control state; 'finished' is derived."""

    study_id: int
    name: str
    tenant: str
    state: StudyState
    task: str
    direction: str
    n_trials: int
    max_epochs: int
    max_retries: int
    definition: StudyDefinition
    created_at: float
    updated_at: float


def _record(row: sa.Row[tuple[object, ...]]) -> StudyRecord:
    m = row._mapping
    return StudyRecord(
        study_id=int(m["study_id"]),
        name=str(m["name"]),
        tenant=str(m["tenant"]),
        state=m["state"],
        task=str(m["task"]),
        direction=str(m["direction"]),
        n_trials=int(m["n_trials"]),
        max_epochs=int(m["max_epochs"]),
        max_retries=int(m["max_retries"]),
        definition=StudyDefinition.model_validate_json(str(m["definition"])),
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
    )


def create_study(
    backend: Backend, definition: StudyDefinition, *, tenant: str = DEFAULT_TENANT
) -> StudyRecord:
    """Create the Optuna study and our record of it, or neither.

    Raises:
        StudyAlreadyExistsError: A study of that name exists (in any tenant).
    """
    definition = parse_definition(definition)
    with backend.engine.connect() as conn:
        exists = conn.execute(
            sa.select(studies.c.study_id).where(studies.c.name == definition.name)
        ).first()
    if exists is not None:
        raise StudyAlreadyExistsError(definition.name)
    try:
        study = optuna.create_study(
            storage=backend.optuna_storage,
            study_name=definition.name,
            direction=definition.direction,
            sampler=make_sampler(definition),
            pruner=make_pruner(definition),
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyAlreadyExistsError(definition.name) from None
    study_id = study._study_id
    try:
        study.set_user_attr("definition", definition.model_dump(mode="json"))
        with backend.engine.begin() as conn:
            now = db_now(conn)
            conn.execute(
                studies.insert().values(
                    study_id=study_id,
                    name=definition.name,
                    tenant=tenant,
                    state="running",
                    task=definition.task,
                    direction=definition.direction,
                    n_trials=definition.budget.n_trials,
                    max_epochs=definition.budget.max_epochs,
                    max_retries=definition.budget.max_retries,
                    definition=definition.model_dump_json(),
                    created_at=now,
                    updated_at=now,
                )
            )
    except sa.exc.IntegrityError:
        optuna.delete_study(study_name=definition.name, storage=backend.optuna_storage)
        raise StudyAlreadyExistsError(definition.name) from None
    except BaseException:
        # Nothing half-created: drop the Optuna study if our record could not be written.
        optuna.delete_study(study_name=definition.name, storage=backend.optuna_storage)
        raise
    return get_study(backend, definition.name)


def get_study(backend: Backend, name: str, *, tenant: str | None = None) -> StudyRecord:
    """Our record of a study; ``tenant`` (if given) hides other tenants' studies."""
    with backend.engine.connect() as conn:
        return get_study_conn(conn, name, tenant=tenant)


def get_study_conn(conn: Connection, name: str, *, tenant: str | None = None) -> StudyRecord:
    query = sa.select(studies).where(studies.c.name == name)
    if tenant is not None:
        query = query.where(studies.c.tenant == tenant)
    row = conn.execute(query).first()
    if row is None:
        raise StudyNotFoundError(name)
    return _record(row)


def list_studies(
    backend: Backend,
    *,
    tenant: str | None = None,
    states: tuple[StudyState, ...] | None = None,
    limit: int | None = None,
    before_id: int | None = None,
) -> list[StudyRecord]:
    """Studies, newest first (by id), optionally one tenant's and/or in given states."""
    query = sa.select(studies).order_by(studies.c.study_id.desc())
    if tenant is not None:
        query = query.where(studies.c.tenant == tenant)
    if states is not None:
        query = query.where(studies.c.state.in_(states))
    if before_id is not None:
        query = query.where(studies.c.study_id < before_id)
    if limit is not None:
        query = query.limit(limit)
    with backend.engine.connect() as conn:
        return [_record(r) for r in conn.execute(query)]


def change_state(
    backend: Backend,
    name: str,
    action: Literal["pause", "resume", "cancel"],
    *,
    tenant: str | None = None,
) -> StudyRecord:
    """Pause, resume or cancel a study. Workers see the new state on their next ask.

    Raises:
        InvalidStateError: The action does not apply to the study's current state.
    """
    allowed = _TRANSITIONS[action]
    with backend.engine.begin() as conn:
        record = get_study_conn(conn, name, tenant=tenant)
        if record.state not in allowed:
            raise InvalidStateError(f"cannot {action} study {name!r}: it is {record.state}")
        conn.execute(
            studies.update()
            .where(studies.c.study_id == record.study_id)
            .values(state=allowed[record.state], updated_at=db_now(conn))
        )
    return get_study(backend, name)


def load_optuna_study(backend: Backend, record: StudyRecord, *, seed_salt: int = 0) -> optuna.Study:
    """The Optuna study with the sampler and pruner its definition asks for.

    ``seed_salt`` varies a seeded sampler per worker so that two workers with the
    same seed do not propose the same configurations.
    """
    definition = record.definition
    if definition.sampler.seed is not None and seed_salt:
        seed = (definition.sampler.seed * 1_000_003 + seed_salt) % (2**32)
        definition = definition.model_copy(
            update={"sampler": definition.sampler.model_copy(update={"seed": seed})}
        )
    return optuna.load_study(
        study_name=record.name,
        storage=backend.optuna_storage,
        sampler=make_sampler(definition),
        pruner=make_pruner(definition),
    )


def definition_json(record: StudyRecord) -> str:
    return json.dumps(record.definition.model_dump(mode="json"))
