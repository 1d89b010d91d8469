"""Best schedules across all of a task's studies (one tenant's), in one bounded query.

What a user asks before starting a new study: for this task, which schedule
types have won before, with which settings? The answer reads the summary table
``lrsearch_trials`` joined to ``lrsearch_studies``: every COMPLETE trial with a
finite value of the tenant's studies of the task, ranked by a window function
partitioned by (direction, schedule), and only the top ``k`` of each partition
come back. One statement on SQLite and PostgreSQL alike; the rows returned are
bounded by ``2 directions x schedule types x k`` whatever the number of studies.

Directions: values of a ``maximize`` study (accuracy) and a ``minimize`` study
(a loss) cannot be ranked together, so each direction is its own group. Within
a direction the studies of one task share the task's data and metric family;
their values are compared as they are (a study's own metric is shown with each
trial, so a mixture of, say, ``val_loss`` and a custom loss stays visible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lrsearch.search_space import SCHEDULE_TYPES, ScheduleSettings, StudyDefinition, trial_settings
from lrsearch.storage._results import ROW_COLUMNS, TrialRow, is_finite, row_from_mapping
from lrsearch.storage._study_definitions import read_definition
from lrsearch.storage._tables import studies, trial_results

MAX_CROSS_STUDY_TOP = 10
"""Most trials per schedule and direction that one request may ask for."""


@dataclass(frozen=True)
class CrossStudyTrial:
    """One of the best trials of a schedule type, with the study it comes from."""

    study: str
    metric: str
    max_epochs: int
    row: TrialRow
    settings: ScheduleSettings | None


@dataclass(frozen=True)
class CrossStudySchedule:
    """A schedule type's best trials across a task's studies of one direction, best first."""

    direction: str
    schedule: str
    trials: list[CrossStudyTrial]


def _candidates_window(tenant: str, task: str) -> sa.Subquery:
    """Every complete trial of the task, ranked by one window (portable; SQLite)."""
    tr, st = trial_results.c, studies.c
    return (
        sa.select(tr.trial_id, st.direction, st.name, tr.schedule, tr.value, tr.number)
        .select_from(trial_results.join(studies, studies.c.study_id == trial_results.c.study_id))
        .where(
            st.tenant == tenant,
            st.task == task,
            tr.state == "COMPLETE",
            is_finite(tr.value),
            tr.schedule.in_(SCHEDULE_TYPES),
        )
        .subquery("candidates")
    )


def _candidates_lateral(tenant: str, task: str, k: int) -> sa.Subquery:
    """The ``k`` best trials of each (study, schedule type), each an index range scan.

    PostgreSQL: a ``LATERAL`` subquery per study and schedule type walks
    ``ix_lrsearch_trials_study_schedule`` (study, schedule, state, value) in the
    study's direction and stops after ``k`` rows, so the final window ranks at
    most ``studies x schedule types x k`` rows instead of every trial.
    """
    tr, st = trial_results.c, studies.c
    sched = sa.values(sa.column("schedule", sa.String), name="sched").data(
        [(s,) for s in SCHEDULE_TYPES]
    )

    def branch(direction: str, order: Any) -> sa.Select[Any]:
        return (
            sa.select(tr.trial_id, tr.value, tr.number)
            .where(
                st.direction == direction,
                tr.study_id == st.study_id,
                tr.schedule == sched.c.schedule,
                tr.state == "COMPLETE",
                is_finite(tr.value),
            )
            .order_by(order, tr.number)
            .limit(k)
            .correlate(studies, sched)
        )

    top = sa.union_all(
        branch("maximize", tr.value.desc()), branch("minimize", tr.value.asc())
    ).lateral("top")
    return (
        sa.select(
            top.c.trial_id, st.direction, st.name, sched.c.schedule, top.c.value, top.c.number
        )
        .select_from(studies.join(sched, sa.true()).join(top, sa.true()))
        .where(st.tenant == tenant, st.task == task)
        .subquery("candidates")
    )


def _ranked(tenant: str, task: str, k: int, dialect: str) -> sa.Select[Any]:
    if dialect == "postgresql":
        cand = _candidates_lateral(tenant, task, k)
    else:
        cand = _candidates_window(tenant, task)
    c = cand.c
    # Within one direction the sign is constant; the CASE makes "best first" one
    # ascending order for both directions.
    score = sa.case((c.direction == "maximize", -c.value), else_=c.value)
    ranked = sa.select(
        c.trial_id,
        c.direction,
        sa.func.row_number()
        .over(partition_by=(c.direction, c.schedule), order_by=(score, c.name, c.number))
        .label("rank"),
    ).subquery("ranked")
    # Full rows (params, the study's definition) only for the winners.
    st = studies.c
    return (
        sa.select(
            *ROW_COLUMNS,
            ranked.c.direction,
            ranked.c.rank,
            st.study_id,
            st.name.label("study_name"),
            st.max_epochs,
            st.definition,
            st.definition_version,
        )
        .select_from(
            ranked.join(trial_results, trial_results.c.trial_id == ranked.c.trial_id).join(
                studies, studies.c.study_id == trial_results.c.study_id
            )
        )
        .where(ranked.c.rank <= k)
        .order_by(ranked.c.direction, trial_results.c.schedule, ranked.c.rank)
    )


def best_across_studies(
    conn: Connection, *, tenant: str, task: str, k: int = 3
) -> list[CrossStudySchedule]:
    """The ``k`` best COMPLETE trials of each schedule type over a task's studies.

    Args:
        conn: A connection to the storage.
        tenant: Only this tenant's studies are read.
        task: The task the studies train (``StudyDefinition.task``).
        k: Trials per schedule type and direction, 1 to :data:`MAX_CROSS_STUDY_TOP`.

    Returns:
        One entry per (direction, schedule type) that has a complete trial:
        ``maximize`` groups first, and within a direction the schedule with the
        best trial first. Ties rank by study name, then trial number.
    """
    k = max(1, min(k, MAX_CROSS_STUDY_TOP))
    groups: dict[tuple[str, str], CrossStudySchedule] = {}
    definitions: dict[int, StudyDefinition] = {}
    for row in conn.execute(_ranked(tenant, task, k, conn.dialect.name)):
        m = row._mapping
        study_id = int(m["study_id"])
        if study_id not in definitions:
            definitions[study_id] = read_definition(m)[0]
        definition = definitions[study_id]
        trial = row_from_mapping(m)
        key = (str(m["direction"]), str(trial.schedule))
        group = groups.setdefault(key, CrossStudySchedule(key[0], key[1], []))
        group.trials.append(
            CrossStudyTrial(
                study=str(m["study_name"]),
                metric=definition.objective.metric,
                max_epochs=int(m["max_epochs"]),
                row=trial,
                settings=trial_settings(definition, trial.params),
            )
        )

    def order(g: CrossStudySchedule) -> tuple[int, float]:
        best = g.trials[0].row.value or 0.0
        sign = -1.0 if g.direction == "maximize" else 1.0
        return (0 if g.direction == "maximize" else 1, sign * best)

    return sorted(groups.values(), key=order)
