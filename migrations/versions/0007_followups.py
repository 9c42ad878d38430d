"""agreed follow-ups: contacts the customer asked for, with a due window

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "followups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("touchpoint", sa.String(length=100), nullable=False),
        sa.Column("note", sa.String(length=32), nullable=True),
        sa.Column("due_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=120), nullable=True),
        sa.Column("contact_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_followups_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followups")),
    )
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_followups_subject_id"), ["subject_id"], unique=False)
        batch_op.create_index("ix_followups_status_due_from", ["status", "due_from"], unique=False)
        batch_op.create_index(
            "ix_followups_status_due_until", ["status", "due_until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index("ix_followups_status_due_until")
        batch_op.drop_index("ix_followups_status_due_from")
        batch_op.drop_index(batch_op.f("ix_followups_subject_id"))
    op.drop_table("followups")
