"""assess: stored assessment runs and re-assessment (watch) policies

Revision ID: assess_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bastion.store.migrations import columns as col

revision = "assess_0001"
down_revision = None
branch_labels = ("assess",)


def upgrade() -> None:
    op.create_table(
        "assess_runs",
        col.id_pk(),
        sa.Column("model_key", sa.String(256), nullable=False),
        col.digest("model_sha256"),
        col.digest("data_sha256", nullable=True),
        sa.Column("bastion_version", sa.String(32), nullable=False),
        sa.Column("catalog_version", sa.String(32), nullable=True),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("max_severity", sa.String(16), nullable=True),
        sa.Column("n_findings", sa.Integer(), nullable=False),
        col.json("findings"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        col.json("assessment"),
        col.at("created_at"),
    )
    op.create_index("ix_assess_runs_model_key", "assess_runs", ["model_key"])
    op.create_index("ix_assess_runs_created_at", "assess_runs", ["created_at"])
    op.create_table(
        "assess_watch",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        col.json("only"),
        sa.Column("every_s", sa.Float(), nullable=False),
        col.json("triggers"),
        sa.Column("demote", sa.Boolean(), nullable=False),
        sa.Column("demote_at", sa.String(16), nullable=False),
        *col.created(),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        col.at("last_run_at", nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        col.at("lease_until", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("assess_watch")
    op.drop_index("ix_assess_runs_created_at", table_name="assess_runs")
    op.drop_index("ix_assess_runs_model_key", table_name="assess_runs")
    op.drop_table("assess_runs")
