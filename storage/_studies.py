"""Creating, finding and controlling studies: Optuna's study plus our record of it.

Names: a study's ``name`` is unique within its tenant. Optuna's ``study_name``
is unique across the whole database, so our row keeps the Optuna name apart
(``optuna_name``): the name itself in the default tenant, ``<tenant>/<name>``
in the others (neither names nor tenants may contain ``/``). Everything that
opens the Optuna study goes through :func:`load_optuna_study` or uses
``record.optuna_name``, never ``record.name``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.search_space import StudyDefinition, make_pruner, make_sampler, parse_definition
from lrsearch.storage._clock import db_now
from lrsearch.storage._engine import Backend
from lrsearch.storage._errors import (
    AmbiguousStudyError,
    InvalidStateError,
    StudyAlreadyExistsError,
    StudyNotFoundError,
)
from lrsearch.storage._study_definitions import DEFINITION_VERSION, read_definition
from lrsearch.storage._tables import studies
from lrsearch.storage._tpe_columns import ColumnTPESampler

log = logging.getLogger(__name__)

StudyState = Literal["running", "paused", "cancelled", "failed"]
DEFAULT_TENANT = "default"

_TRANSITIONS: dict[str, dict[str, StudyState]] = {
    "pause": {"running": "paused"},
    "resume": {"paused": "running", "failed": "running"},
    "cancel": {"running": "cancelled", "paused": "cancelled", "failed": "cancelled"},
}


@dataclass(frozen=True)
class StudyRecord:
    """Our row for one study. ``state`` is the control state; 'finished' is derived.

    ``definition_problem`` is set when the stored definition no longer
    validates (a newer format, or rules that changed): ``definition`` is then a
    stand-in built from the row's columns, ``definition_raw`` keeps the stored
    JSON, listings still show the study and workers skip it.
    """

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
    optuna_name: str = ""
    state_reason: str | None = None
    definition_raw: str = ""
    definition_problem: str | None = None


def optuna_study_name(name: str, tenant: str) -> str:
    """The Optuna ``study_name`` of a new study of ``tenant``."""
    return name if tenant == DEFAULT_TENANT else f"{tenant}/{name}"


def _record(row: sa.Row[Any]) -> StudyRecord:
    m = row._mapping
    definition, problem = read_definition(m)
    reason = m.get("state_reason")
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
        definition=definition,
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
        optuna_name=str(m["optuna_name"]),
        state_reason=None if reason is None else str(reason),
        definition_raw=str(m["definition"]),
        definition_problem=problem,
    )


def create_study(
    backend: Backend, definition: StudyDefinition, *, tenant: str = DEFAULT_TENANT
) -> StudyRecord:
    """Create the Optuna study and our record of it, or neither.

    Raises:
        StudyAlreadyExistsError: The tenant has a study of that name (other
            tenants' names are not seen).
    """
    definition = parse_definition(definition)
    with backend.engine.connect() as conn:
        exists = conn.execute(
            sa.select(studies.c.study_id).where(
                studies.c.name == definition.name, studies.c.tenant == tenant
            )
        ).first()
    if exists is not None:
        raise StudyAlreadyExistsError(definition.name)
    study, optuna_name = _create_optuna_study(backend, definition, tenant)
    try:
        study.set_user_attr("definition", definition.model_dump(mode="json"))
        with backend.engine.begin() as conn:
            now = db_now(conn)
            conn.execute(
                studies.insert().values(
                    study_id=study._study_id,
                    name=definition.name,
                    tenant=tenant,
                    optuna_name=optuna_name,
                    state="running",
                    task=definition.task,
                    direction=definition.direction,
                    n_trials=definition.budget.n_trials,
                    max_epochs=definition.budget.max_epochs,
                    max_retries=definition.budget.max_retries,
                    definition=definition.model_dump_json(),
                    definition_version=DEFINITION_VERSION,
                    created_at=now,
                    updated_at=now,
                )
            )
            record = read_study_by_id(study._study_id, conn=conn)
    except sa.exc.IntegrityError:
        optuna.delete_study(study_name=optuna_name, storage=backend.optuna_storage)
        raise StudyAlreadyExistsError(definition.name) from None
    except BaseException:
        # Nothing half-created: drop the Optuna study if our record could not be written.
        optuna.delete_study(study_name=optuna_name, storage=backend.optuna_storage)
        raise
    if definition.warm_start is not None:
        # Imported here: warm starts read other studies through this module.
        from lrsearch.storage._warm_start import warm_start

        warm_start(backend, study, record)
    return record


def _create_optuna_study(
    backend: Backend, definition: StudyDefinition, tenant: str
) -> tuple[optuna.Study, str]:
    # A study of another tenant made before names were per tenant kept its bare
    # name in Optuna; the default tenant then falls back on "default/<name>",
    # which no other tenant can produce, rather than answer 409.
    names = [optuna_study_name(definition.name, tenant)]
    if tenant == DEFAULT_TENANT:
        names.append(f"{tenant}/{definition.name}")
    for optuna_name in names:
        try:
            study = optuna.create_study(
                storage=backend.optuna_storage,
                study_name=optuna_name,
                direction=definition.direction,
                sampler=make_sampler(definition, tpe=ColumnTPESampler),
                pruner=make_pruner(definition),
            )
        except optuna.exceptions.DuplicatedStudyError:
            continue
        return study, optuna_name
    raise StudyAlreadyExistsError(definition.name)


def read_study(name: str, *, conn: Connection, tenant: str | None = None) -> StudyRecord:
    """Our record of a study, read on ``conn``.

    Args:
        name: The study's name.
        conn: The connection (and transaction) to read on.
        tenant: Only this tenant's study. ``None`` is for trusted callers
            (workers, CLI): any tenant's, if exactly one has that name.

    Raises:
        StudyNotFoundError: No such study (in that tenant).
        AmbiguousStudyError: ``tenant`` is ``None`` and several tenants have the name.
    """
    query = sa.select(studies).where(studies.c.name == name).order_by(studies.c.tenant)
    if tenant is not None:
        query = query.where(studies.c.tenant == tenant)
    rows = conn.execute(query).all()
    if not rows:
        raise StudyNotFoundError(name)
    if len(rows) > 1:
        raise AmbiguousStudyError(name, [str(r._mapping["tenant"]) for r in rows])
    return _record(rows[0])


def read_study_by_id(study_id: int, *, conn: Connection) -> StudyRecord:
    """Our record of the study with Optuna's ``study_id``.

    Raises:
        StudyNotFoundError: No such study (deleted meanwhile).
    """
    row = conn.execute(sa.select(studies).where(studies.c.study_id == study_id)).first()
    if row is None:
        raise StudyNotFoundError(f"#{study_id}")
    return _record(row)


def get_study(backend: Backend, name: str, *, tenant: str | None = None) -> StudyRecord:
    """:func:`read_study` on a connection of its own (kept: many callers hold only a backend)."""
    with backend.engine.connect() as conn:
        return read_study(name, conn=conn, tenant=tenant)


def list_studies(
    backend: Backend,
    *,
    tenant: str | None = None,
    states: tuple[StudyState, ...] | None = None,
    limit: int | None = None,
    before_id: int | None = None,
) -> list[StudyRecord]:
    """Studies, newest first (by id), optionally one tenant's and/or in given states.

    A study whose stored definition no longer validates is listed with
    ``definition_problem`` set, never dropped and never an error.
    """
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

    Resuming a ``failed`` study clears its ``state_reason``.

    Raises:
        InvalidStateError: The action does not apply to the study's current state.
    """
    allowed = _TRANSITIONS[action]
    with backend.engine.begin() as conn:
        record = read_study(name, conn=conn, tenant=tenant)
        if record.state not in allowed:
            raise InvalidStateError(f"cannot {action} study {name!r}: it is {record.state}")
        values: dict[str, Any] = {"state": allowed[record.state], "updated_at": db_now(conn)}
        if action == "resume":
            values["state_reason"] = None
        conn.execute(
            studies.update()
            .where(studies.c.study_id == record.study_id, studies.c.state == record.state)
            .values(**values)
        )
        return read_study_by_id(record.study_id, conn=conn)


def mark_study_failed(conn: Connection, study_id: int, reason: str) -> bool:
    """Mark a running or paused study ``failed`` with ``reason``, on the caller's transaction.

    A cancelled study stays cancelled and a failed one keeps its first reason:
    the first verdict is the one users should see.

    Returns:
        Whether the study was marked (``False``: not found, or in another state).
    """
    result = conn.execute(
        studies.update()
        .where(studies.c.study_id == study_id, studies.c.state.in_(("running", "paused")))
        .values(state="failed", state_reason=reason, updated_at=db_now(conn))
    )
    return bool(result.rowcount)


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
        study_name=record.optuna_name or record.name,
        storage=backend.optuna_storage,
        sampler=make_sampler(definition, tpe=ColumnTPESampler),
        pruner=make_pruner(definition),
    )


def definition_json(record: StudyRecord) -> str:
    return json.dumps(record.definition.model_dump(mode="json"))
