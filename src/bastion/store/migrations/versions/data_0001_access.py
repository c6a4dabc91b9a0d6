"""data: registered data sets, principals with public keys, grants and wrapped data keys

Revision ID: data_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "data_0001"
down_revision = None
branch_labels = ("data",)
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "data_principals",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("key_fingerprint", sa.String(64), nullable=True, unique=True),
        sa.Column("client_id", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
    )
    op.create_table(
        "data_datasets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("size", _BIGINT, nullable=False),
        sa.Column("key_epoch", sa.Integer(), nullable=False),
        sa.Column("encrypted_dir", sa.Text(), nullable=True),
        sa.Column("encrypted_files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
    )
    op.create_table(
        "data_grants",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("data_datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("principal", sa.String(128), sa.ForeignKey("data_principals.name"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(160), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(160), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_data_grants_dataset_id", "data_grants", ["dataset_id"])
    op.create_index("ix_data_grants_principal", "data_grants", ["principal"])
    op.create_table(
        "data_key_wraps",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("data_datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(128), sa.ForeignKey("data_principals.name"), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("dataset_id", "epoch", "principal", name="uq_data_key_wraps_reader"),
    )
    op.create_index("ix_data_key_wraps_dataset_id", "data_key_wraps", ["dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_data_key_wraps_dataset_id", table_name="data_key_wraps")
    op.drop_table("data_key_wraps")
    op.drop_index("ix_data_grants_principal", table_name="data_grants")
    op.drop_index("ix_data_grants_dataset_id", table_name="data_grants")
    op.drop_table("data_grants")
    op.drop_table("data_datasets")
    op.drop_table("data_principals")
