"""Our own tables, beside Optuna's schema. All are prefixed ``lrsearch_``.

This is the schema at the newest migration (``storage/_migrations/versions``);
a change here needs a new revision there (a test compares the two).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

studies = sa.Table(
    "lrsearch_studies",
    metadata,
    sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
    # Unique per tenant (below): another tenant never learns that a name is taken.
    sa.Column("name", sa.String(512), nullable=False),
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
    # Optuna's study_name is unique across tenants: ``<tenant>/<name>`` outside
    # the default tenant (names and tenants cannot contain ``/``).
    sa.Column("optuna_name", sa.String(512), nullable=False),
    # Why the study is ``failed`` (NULL otherwise).
    sa.Column("state_reason", sa.Text, nullable=True),
    # The format of ``definition``; rows of an older format are upgraded on read.
    sa.Column("definition_version", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("tenant", "name", name="uq_lrsearch_studies_tenant_name"),
    sa.UniqueConstraint("optuna_name", name="uq_lrsearch_studies_optuna_name"),
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
    # Revision 0004: the trial list's sorts by state and schedule, the scatter's count.
    sa.Index("ix_lrsearch_trials_study_state_number", "study_id", "state", "number"),
    sa.Index("ix_lrsearch_trials_study_schedule_number", "study_id", "schedule", "number"),
    sa.Index("ix_lrsearch_trials_study_lr", "study_id", "learning_rate"),
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

# Running totals of ``lrsearch_trials`` per study, kind of trial and schedule,
# kept by storage._aggregates in the transaction that writes a summary row, so
# that summaries read a handful of rows instead of every trial of a study.
# ``schedule`` is '' for trials without one.
study_aggregates = sa.Table(
    "lrsearch_study_aggregates",
    metadata,
    sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("confirmation", sa.Boolean, primary_key=True),
    sa.Column("schedule", sa.String(32), primary_key=True),
    sa.Column("n_complete", sa.Integer, nullable=False, server_default="0"),
    sa.Column("n_pruned", sa.Integer, nullable=False, server_default="0"),
    sa.Column("n_fail", sa.Integer, nullable=False, server_default="0"),
    # FAIL trials that a retry repeats (``retried``).
    sa.Column("n_retried", sa.Integer, nullable=False, server_default="0"),
    # COMPLETE and PRUNED trials with a finite value (the median's population).
    sa.Column("n_valued", sa.Integer, nullable=False, server_default="0"),
    sa.Column("epochs_run", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("pruned_epochs", sa.BigInteger, nullable=False, server_default="0"),
    # The largest and smallest finite value of a COMPLETE trial, each with the
    # lowest trial number that has it.
    sa.Column("max_value", sa.Float, nullable=True),
    sa.Column("max_number", sa.Integer, nullable=True),
    sa.Column("min_value", sa.Float, nullable=True),
    sa.Column("min_number", sa.Integer, nullable=True),
)
