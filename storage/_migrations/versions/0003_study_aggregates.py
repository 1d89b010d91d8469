"""Running totals of each study's results, filled in for the studies already there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

``lrsearch_study_aggregates``: per study, kind of trial (search or
confirmation) and schedule, the trials COMPLETE / PRUNED / FAIL, the failures
a retry repeats, the epochs trained and the best value either way with its
trial (see ``storage/_aggregates.py``, which keeps them from now on). The
totals of existing studies are computed here from ``lrsearch_trials``, in SQL
that does not depend on the code of later revisions.

``ix_lrsearch_unfinished_trials``: a partial index on Optuna's ``trials`` over
the RUNNING and WAITING trials only (a few per study, whatever its size), so
that a summary counts them without reading every trial of the study.

(The ``ix_lrsearch_infeasible_attrs`` index this revision was meant to add
came only with revision 0004; its downgrade drops it if it is there.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The predicate of the partial index, as storage._aggregates queries it.
UNFINISHED = "state IN ('RUNNING', 'WAITING')"
# Whether a summary row's trial is a confirmation (Optuna's user attr).
_CONFIRMATION = (
    "EXISTS (SELECT 1 FROM trial_user_attributes u "
    "WHERE u.trial_id = t.trial_id AND u.key = 'confirmation_of')"
)
# A finite value is not NULL, NaN or +-inf (NaN sorts above every number on PostgreSQL).
_BACKFILL = """
INSERT INTO lrsearch_study_aggregates (
    study_id, confirmation, schedule, n_complete, n_pruned, n_fail, n_retried, n_valued,
    epochs_run, pruned_epochs, max_value, min_value)
SELECT study_id, confirmation, schedule,
    SUM(CASE WHEN state = 'COMPLETE' THEN 1 ELSE 0 END),
    SUM(CASE WHEN state = 'PRUNED' THEN 1 ELSE 0 END),
    SUM(CASE WHEN state = 'FAIL' THEN 1 ELSE 0 END),
    SUM(CASE WHEN state = 'FAIL' AND retried THEN 1 ELSE 0 END),
    SUM(CASE WHEN state IN ('COMPLETE', 'PRUNED') AND finite THEN 1 ELSE 0 END),
    SUM(epochs_run),
    SUM(CASE WHEN state = 'PRUNED' THEN epochs_run ELSE 0 END),
    MAX(CASE WHEN state = 'COMPLETE' AND finite THEN value END),
    MIN(CASE WHEN state = 'COMPLETE' AND finite THEN value END)
FROM (
    SELECT t.study_id, t.state, t.value, t.retried, t.epochs_run,
        COALESCE(t.schedule, '') AS schedule,
        EXISTS (SELECT 1 FROM trial_user_attributes u
            WHERE u.trial_id = t.trial_id AND u.key = 'confirmation_of') AS confirmation,
        (t.value IS NOT NULL
            AND t.value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308) AS finite
    FROM lrsearch_trials t
) r
GROUP BY study_id, confirmation, schedule
"""

# The lowest trial number that has the group's best value, either way.
_BEST_NUMBER = """
UPDATE lrsearch_study_aggregates SET {column}_number = (
    SELECT MIN(t.number) FROM lrsearch_trials t
    WHERE t.study_id = lrsearch_study_aggregates.study_id
        AND COALESCE(t.schedule, '') = lrsearch_study_aggregates.schedule
        AND t.state = 'COMPLETE'
        AND t.value = lrsearch_study_aggregates.{column}_value
        AND {confirmation} = lrsearch_study_aggregates.confirmation
)
WHERE {column}_value IS NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "lrsearch_study_aggregates",
        sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("confirmation", sa.Boolean, primary_key=True),
        sa.Column("schedule", sa.String(32), primary_key=True),
        sa.Column("n_complete", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_pruned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_fail", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_retried", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_valued", sa.Integer, nullable=False, server_default="0"),
        sa.Column("epochs_run", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("pruned_epochs", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("max_value", sa.Float, nullable=True),
        sa.Column("max_number", sa.Integer, nullable=True),
        sa.Column("min_value", sa.Float, nullable=True),
        sa.Column("min_number", sa.Integer, nullable=True),
    )
    op.execute(_BACKFILL)
    op.execute(
        f"CREATE INDEX ix_lrsearch_unfinished_trials ON trials (study_id, state) WHERE {UNFINISHED}"
    )
    confirmation = _CONFIRMATION
    for column in ("max", "min"):
        op.execute(_BEST_NUMBER.format(column=column, confirmation=confirmation))


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_lrsearch_infeasible_attrs")
    op.execute("DROP INDEX ix_lrsearch_unfinished_trials")
    op.drop_table("lrsearch_study_aggregates")
