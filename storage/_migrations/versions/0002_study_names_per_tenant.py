"""Study names unique per tenant, the Optuna name, a failure reason, a definition version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

- ``optuna_name``: the name of the study in Optuna's ``studies`` table, which
  is globally unique; existing studies keep their name there.
- ``unique(name)`` becomes ``unique(tenant, name)``: another tenant no longer
  learns from a 409 that a name is taken.
- ``state_reason``: why a study is ``failed``.
- ``definition_version``: the format of ``definition``; 0.1.0 wrote version 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _studies_before_constraints() -> sa.Table:
    """The table as it stands after the new columns are added, constraint named.

    Given to batch mode as ``copy_from``: SQLite cannot drop a constraint, so the
    table is copied, and 0.1.0's ``create_all`` left the unique constraint
    unnamed there; naming it here lets the copy drop it.
    """
    return sa.Table(
        "lrsearch_studies",
        sa.MetaData(),
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
        sa.Column("optuna_name", sa.String(512), nullable=True),
        sa.Column("state_reason", sa.Text, nullable=True),
        sa.Column("definition_version", sa.Integer, nullable=False, server_default="1"),
        sa.UniqueConstraint("name", name="lrsearch_studies_name_key"),
        sa.Index("ix_lrsearch_studies_tenant", "tenant"),
    )


def upgrade() -> None:
    op.add_column("lrsearch_studies", sa.Column("optuna_name", sa.String(512), nullable=True))
    op.add_column("lrsearch_studies", sa.Column("state_reason", sa.Text, nullable=True))
    op.add_column(
        "lrsearch_studies",
        sa.Column("definition_version", sa.Integer, nullable=False, server_default="1"),
    )
    op.execute("UPDATE lrsearch_studies SET optuna_name = name")
    with op.batch_alter_table("lrsearch_studies", copy_from=_studies_before_constraints()) as batch:
        batch.drop_constraint("lrsearch_studies_name_key", type_="unique")
        batch.alter_column("optuna_name", existing_type=sa.String(512), nullable=False)
        batch.create_unique_constraint("uq_lrsearch_studies_tenant_name", ["tenant", "name"])
        batch.create_unique_constraint("uq_lrsearch_studies_optuna_name", ["optuna_name"])


def downgrade() -> None:
    # Going back would have to rename other tenants' studies that share a name
    # and rewrite their Optuna names: restore the backup taken before upgrading.
    raise NotImplementedError("revision 0002 cannot be downgraded; restore a backup")
