"""assess: stored assessment runs and re-assessment (watch) policies

Revision ID: assess_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "assess_0001"
down_revision = None
branch_labels = ("assess",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assess_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_key", sa.String(256), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("data_sha256", sa.String(64), nullable=True),
        sa.Column("bastion_version", sa.String(32), nullable=False),
        sa.Column("catalog_version", sa.String(32), nullable=True),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("max_severity", sa.String(16), nullable=True),
        sa.Column("n_findings", sa.Integer(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("assessment", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_assess_runs_model_key", "assess_runs", ["model_key"])
    op.create_index("ix_assess_runs_created_at", "assess_runs", ["created_at"])
    op.create_table(
        "assess_watch",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("only", sa.JSON(), nullable=False),
        sa.Column("every_s", sa.Float(), nullable=False),
        sa.Column("triggers", sa.JSON(), nullable=False),
        sa.Column("demote", sa.Boolean(), nullable=False),
        sa.Column("demote_at", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("assess_watch")
    op.drop_index("ix_assess_runs_created_at", table_name="assess_runs")
    op.drop_index("ix_assess_runs_model_key", table_name="assess_runs")
    op.drop_table("assess_runs")
