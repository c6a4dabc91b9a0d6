"""respond: incidents

Revision ID: respond_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bastion.store.migrations import columns as col

revision = "respond_0001"
down_revision = None
branch_labels = ("respond",)


def upgrade() -> None:
    op.create_table(
        "respond_incidents",
        col.id_pk(),
        sa.Column("dedupe_key", sa.String(256), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("alert_type", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        col.digest("model_sha256", nullable=True),
        col.json("evidence"),
        col.json("affected_clients"),
        col.json("timeline"),
        col.json("atlas"),
        col.json("aiid"),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("serious", sa.Boolean(), nullable=False),
        col.at("opened_at"),
        col.at("updated_at"),
        col.at("closed_at", nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        col.json("actions_done"),
        sa.Column("notes", sa.Text(), nullable=False),
    )
    op.create_index("ix_respond_incidents_dedupe_key", "respond_incidents", ["dedupe_key"])
    op.create_index("ix_respond_incidents_status", "respond_incidents", ["status"])


def downgrade() -> None:
    op.drop_table("respond_incidents")
