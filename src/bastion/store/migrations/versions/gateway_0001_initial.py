"""gateway: model versions, aliases, settings, clients, audit chain and checkpoints

Revision ID: gateway_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0001"
down_revision = None
branch_labels = ("gateway",)
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gateway_model_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("signer", sa.String(64), nullable=True),
        sa.Column("scan_verdict", sa.String(32), nullable=False),
        sa.Column("allowed_unsafe", sa.Boolean(), nullable=False),
        sa.Column("input_spec", sa.JSON(), nullable=False),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("pushed_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_gateway_model_versions_name_version"),
    )
    op.create_index("ix_gateway_model_versions_name", "gateway_model_versions", ["name"])
    op.create_table(
        "gateway_aliases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("previous_version", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gateway_model_settings",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("output_policy", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gateway_clients",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("budget", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_gateway_clients_name", "gateway_clients", ["name"])
    op.create_table(
        "gateway_audit",
        sa.Column("seq", _BIGINT, primary_key=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_table(
        "gateway_audit_checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("first_seq", _BIGINT, nullable=False),
        sa.Column("last_seq", _BIGINT, nullable=False, unique=True),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("merkle_root", sa.String(64), nullable=False),
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
