"""Indexes behind the all-trials list's sorts and the scatter sample's count.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

On ``lrsearch_trials`` (see ``storage/_trial_list.py`` and
``storage/_dashboard_queries.py``):

- ``ix_lrsearch_trials_study_state_number`` ``(study_id, state, number)``:
  the list sorted by state (each state's trials by number), the list of one
  or a few states sorted by number, and the best-so-far walk of the history.
- ``ix_lrsearch_trials_study_schedule_number`` ``(study_id, schedule, number)``:
  the list sorted by schedule type (each type's trials by number, the types
  walked one after the other through the index).
- ``ix_lrsearch_trials_study_lr`` ``(study_id, learning_rate)``: how many
  finished trials lack a finite learning rate (the few outside the scatter
  sample), without reading every trial.

On Optuna's ``trial_user_attributes``, two partial indexes over one key each:

- ``ix_lrsearch_infeasible_attrs`` (``infeasible``: trials that ran out of
  memory), which the study page lists (``storage/_infeasible.py``): without
  it that lookup reads the attrs of every trial of the study;
- ``ix_lrsearch_confirmation_attrs`` (``confirmation_of``: confirmation
  re-runs), which every "search trials only" filter probes
  (``storage/_confirm.py``): without it PostgreSQL scans the whole
  ``(trial_id, key)`` index once per query (about 8 ms per 100,000 attrs).

The list sorted by value uses the ``(study_id, state, value)`` index of
revision 0001. Building the indexes blocks writes to the table for as long as
it takes (about a second per 100,000 trials).
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_lrsearch_trials_study_state_number": ["study_id", "state", "number"],
    "ix_lrsearch_trials_study_schedule_number": ["study_id", "schedule", "number"],
    "ix_lrsearch_trials_study_lr": ["study_id", "learning_rate"],
}


INFEASIBLE_INDEX = "ix_lrsearch_infeasible_attrs"
ATTR_INDEXES = {INFEASIBLE_INDEX: "infeasible", "ix_lrsearch_confirmation_attrs": "confirmation_of"}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "lrsearch_trials", columns)
    # Revision 0003's downgrade drops it too, so a database at 0003 may not have it.
    for name, key in ATTR_INDEXES.items():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON trial_user_attributes (trial_id) "
            f"WHERE key = '{key}'"
        )


def downgrade() -> None:
    for name in ATTR_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for name in INDEXES:
        op.drop_index(name, table_name="lrsearch_trials")
