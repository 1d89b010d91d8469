"""The tables of lrsearch 0.1.0, exactly as ``metadata.create_all`` made them.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

A database made by 0.1.0 (tables, no version table) is stamped with this
revision instead of running it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lrsearch_studies",
        sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("n_trials", sa.Integer, nullable=False),
        sa.Column("max_epochs", sa.Integer, nullable=False),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        # The name PostgreSQL gave 0.1.0's ``unique=True``: revision 0002 drops it by name.
        sa.UniqueConstraint("name", name="lrsearch_studies_name_key"),
    )
    op.create_index("ix_lrsearch_studies_tenant", "lrsearch_studies", ["tenant"])
    op.create_table(
        "lrsearch_trials",
        sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("study_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("schedule", sa.String(32), nullable=True),
        sa.Column("learning_rate", sa.Float, nullable=True),
        sa.Column("batch_size", sa.Integer, nullable=True),
        sa.Column("dropout", sa.Float, nullable=True),
        sa.Column("weight_init", sa.String(32), nullable=True),
        sa.Column("warmup_epochs", sa.Integer, nullable=True),
        sa.Column("epochs_run", sa.Integer, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("retry_of", sa.Integer, nullable=True),
        sa.Column("retried", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_lrsearch_trials_study_state_value", "lrsearch_trials", ["study_id", "state", "value"]
    )
    op.create_index(
        "ix_lrsearch_trials_study_schedule",
        "lrsearch_trials",
        ["study_id", "schedule", "state", "value"],
    )
    op.create_index("ix_lrsearch_trials_study_number", "lrsearch_trials", ["study_id", "number"])
    op.create_table(
        "lrsearch_trial_runs",
        sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("study_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(256), nullable=False),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("retry_of", sa.Integer, nullable=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
    )
    op.create_index("ix_lrsearch_trial_runs_study_id", "lrsearch_trial_runs", ["study_id"])
    op.create_table(
        "lrsearch_api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for table in ("api_keys", "trial_runs", "trials", "studies"):
        op.drop_table(f"lrsearch_{table}")
