"""Optuna's own tables, declared once: only the columns lrsearch reads.

Optuna owns these tables and their migrations; lrsearch reads them directly for
fast result queries. ``state`` and the value types are native enums on
PostgreSQL: compare them through their text (``sa.cast(col, sa.String)``).
"""

from __future__ import annotations

import sqlalchemy as sa

trials = sa.table(
    "trials",
    sa.column("trial_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("study_id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("datetime_start", sa.DateTime),
    sa.column("datetime_complete", sa.DateTime),
)
intermediate_values = sa.table(
    "trial_intermediate_values",
    sa.column("trial_id", sa.Integer),
    sa.column("step", sa.Integer),
    sa.column("intermediate_value", sa.Float),
    sa.column("intermediate_value_type", sa.String),
)
trial_user_attrs = sa.table(
    "trial_user_attributes",
    sa.column("trial_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)
trial_system_attrs = sa.table(
    "trial_system_attributes",
    sa.column("trial_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)
trial_params = sa.table(
    "trial_params",
    sa.column("trial_id", sa.Integer),
    sa.column("param_name", sa.String),
    sa.column("param_value", sa.Float),
    sa.column("distribution_json", sa.Text),
)
study_user_attrs = sa.table(
    "study_user_attributes",
    sa.column("study_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)
