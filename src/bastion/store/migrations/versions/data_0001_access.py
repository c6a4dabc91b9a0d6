"""data: registered data sets, principals with public keys, grants and wrapped data keys

Revision ID: data_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bastion.store.migrations import columns as col

revision = "data_0001"
down_revision = None
branch_labels = ("data",)

def upgrade() -> None:
    op.create_table(
        "data_principals",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        col.digest("key_fingerprint", nullable=True, unique=True),
        sa.Column("client_id", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        *col.created(),
    )
    op.create_table(
        "data_datasets",
        col.id_pk(),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        col.digest("manifest_sha256"),
        col.json("manifest"),
        sa.Column("size", col.BIGINT, nullable=False),
        sa.Column("key_epoch", sa.Integer(), nullable=False),
        sa.Column("encrypted_dir", sa.Text(), nullable=True),
        col.json("encrypted_files"),
        *col.created(),
    )
    op.create_table(
        "data_grants",
        col.id_pk(),
        col.cascade_fk("dataset_id", "data_datasets.id"),
        sa.Column("principal", sa.String(128), sa.ForeignKey("data_principals.name"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        col.by("granted_by"),
        col.at("granted_at"),
        col.at("expires_at", nullable=True),
        col.at("revoked_at", nullable=True),
        col.by("revoked_by", nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_data_grants_dataset_id", "data_grants", ["dataset_id"])
    op.create_index("ix_data_grants_principal", "data_grants", ["principal"])
    op.create_table(
        "data_key_wraps",
        col.id_pk(),
        col.cascade_fk("dataset_id", "data_datasets.id"),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(128), sa.ForeignKey("data_principals.name"), nullable=False),
        col.digest("key_fingerprint"),
        sa.Column("wrapped_key", sa.Text(), nullable=False),
        col.at("created_at"),
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
