"""respond: per-replica monitor state (detector pooling through the store)

Revision ID: respond_0002
Revises: respond_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "respond_0002"
down_revision = "respond_0001"


def upgrade() -> None:
    op.create_table(
        "respond_monitor_state",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("replica", sa.String(128), primary_key=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_respond_monitor_state_updated_at", "respond_monitor_state", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_respond_monitor_state_updated_at", table_name="respond_monitor_state")
    op.drop_table("respond_monitor_state")
