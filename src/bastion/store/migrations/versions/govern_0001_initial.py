"""govern: risk register with history, classifications, training records, ethics answers

Revision ID: govern_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bastion.store.migrations import columns as col

revision = "govern_0001"
down_revision = None
branch_labels = ("govern",)

def upgrade() -> None:
    op.create_table(
        "govern_risks",
        col.id_pk(),
        sa.Column("key", sa.String(160), nullable=False, unique=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("system", sa.String(128), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        col.json("control_ids"),
        sa.Column("likelihood", sa.Integer(), nullable=False),
        sa.Column("impact", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("treatment", sa.Text(), nullable=False),
        sa.Column("review_date", sa.Date(), nullable=True),
        col.at("created_at"),
        col.at("updated_at"),
    )
    op.create_index("ix_govern_risks_system", "govern_risks", ["system"])
    op.create_table(
        "govern_risk_history",
        col.id_pk(),
        col.cascade_fk("risk_id", "govern_risks.id"),
        col.at("changed_at"),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        col.json("changes"),
        col.json("snapshot"),
    )
    op.create_index("ix_govern_risk_history_risk_id", "govern_risk_history", ["risk_id"])
    op.create_table(
        "govern_classifications",
        col.id_pk(),
        sa.Column("system", sa.String(128), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        col.digest("answers_sha256"),
        col.json("result"),
        col.at("created_at"),
    )
    op.create_index("ix_govern_classifications_system", "govern_classifications", ["system"])
    op.create_table(
        "govern_training_records",
        col.id_pk(),
        sa.Column("learner", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("lab", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        col.json("details"),
        col.at("completed_at"),
    )
    op.create_index("ix_govern_training_records_learner", "govern_training_records", ["learner"])
    op.create_index("ix_govern_training_records_team", "govern_training_records", ["team"])
    op.create_table(
        "govern_ethics_answers",
        col.id_pk(),
        sa.Column("system", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("answer", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        col.at("answered_at"),
    )
    op.create_index("ix_govern_ethics_answers_system", "govern_ethics_answers", ["system"])


def downgrade() -> None:
    for table in ("govern_ethics_answers", "govern_training_records", "govern_classifications",
                  "govern_risk_history", "govern_risks"):
        op.drop_table(table)
