"""Our own tables, beside Optuna's schema. All are prefixed ``lrsearch_``."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

studies = sa.Table(
    "lrsearch_studies",
    metadata,
    sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(512), nullable=False, unique=True),
    sa.Column("tenant", sa.String(128), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("task", sa.String(128), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("n_trials", sa.Integer, nullable=False),
    sa.Column("max_epochs", sa.Integer, nullable=False),
    sa.Column("max_retries", sa.Integer, nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# One row per finished trial, written when the trial finishes. The service reads
# results from here with aggregates instead of loading every Optuna trial.
trial_results = sa.Table(
    "lrsearch_trials",
    metadata,
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
    sa.Column("epochs_run", sa.Integer, nullable=False, default=0),
    sa.Column("params", sa.Text, nullable=False, default="{}"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("worker", sa.String(256), nullable=True),
    sa.Column("device", sa.String(64), nullable=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("retry_of", sa.Integer, nullable=True),
    sa.Column("retried", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_lrsearch_trials_study_state_value", "study_id", "state", "value"),
    sa.Index("ix_lrsearch_trials_study_schedule", "study_id", "schedule", "state", "value"),
    sa.Index("ix_lrsearch_trials_study_number", "study_id", "number"),
)

# One row per trial a worker is running; heartbeats land here.
trial_runs = sa.Table(
    "lrsearch_trial_runs",
    metadata,
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("study_id", sa.Integer, nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(256), nullable=False),
    sa.Column("device", sa.String(64), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("retry_of", sa.Integer, nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "lrsearch_api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(128), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)
