"""gateway: model versions, aliases, settings, clients, audit chain and checkpoints

Revision ID: gateway_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bastion.store.migrations import columns as col

revision = "gateway_0001"
down_revision = None
branch_labels = ("gateway",)

def upgrade() -> None:
    op.create_table(
        "gateway_model_versions",
        col.id_pk(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        col.digest("sha256"),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("signer", sa.String(64), nullable=True),
        sa.Column("scan_verdict", sa.String(32), nullable=False),
        sa.Column("allowed_unsafe", sa.Boolean(), nullable=False),
        col.json("input_spec"),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        col.json("details"),
        sa.Column("pushed_by", sa.String(128), nullable=False),
        col.at("created_at"),
        sa.UniqueConstraint("name", "version", name="uq_gateway_model_versions_name_version"),
    )
    op.create_index("ix_gateway_model_versions_name", "gateway_model_versions", ["name"])
    op.create_table(
        "gateway_aliases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("previous_version", sa.String(64), nullable=True),
        col.at("updated_at"),
    )
    op.create_table(
        "gateway_model_settings",
        sa.Column("name", sa.String(128), primary_key=True),
        col.json("output_policy"),
        col.at("updated_at"),
    )
    op.create_table(
        "gateway_clients",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        col.json("models"),
        col.json("scopes"),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        col.digest("key_hash"),
        col.json("budget"),
        col.at("created_at"),
        col.at("expires_at", nullable=True),
        col.at("revoked_at", nullable=True),
    )
    op.create_index("ix_gateway_clients_name", "gateway_clients", ["name"])
    op.create_table(
        "gateway_audit",
        sa.Column("seq", col.BIGINT, primary_key=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        col.by("actor"),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        col.digest("prev_hash"),
        col.digest("hash", unique=True),
    )
    op.create_table(
        "gateway_audit_checkpoints",
        col.id_pk(),
        sa.Column("first_seq", col.BIGINT, nullable=False),
        sa.Column("last_seq", col.BIGINT, nullable=False, unique=True),
        col.digest("last_hash"),
        col.digest("merkle_root"),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_audit_checkpoints")
    op.drop_table("gateway_audit")
    op.drop_index("ix_gateway_clients_name", table_name="gateway_clients")
    op.drop_table("gateway_clients")
    op.drop_table("gateway_model_settings")
    op.drop_table("gateway_aliases")
    op.drop_index("ix_gateway_model_versions_name", table_name="gateway_model_versions")
    op.drop_table("gateway_model_versions")
