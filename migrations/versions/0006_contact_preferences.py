"""contact preferences: preferred channel, quiet hours and days, own monthly cap

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_preferences",
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("quiet", sa.Text(), nullable=False),
        sa.Column("monthly_cap_tenths", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_contact_preferences")),
    )
    op.create_table(
        "contact_preference_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("touchpoint", sa.String(length=100), nullable=True),
        sa.Column("method", sa.String(length=50), nullable=True),
        sa.Column("notice_version", sa.String(length=100), nullable=True),
        sa.Column("notice_text_hash", sa.String(length=100), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("evidence_ct", sa.LargeBinary(), nullable=True),
        sa.Column("preferences", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_preference_history")),
    )
    with op.batch_alter_table("contact_preference_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_preference_history_subject_id_at", ["subject_id", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_preference_history", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_preference_history_subject_id_at")
    op.drop_table("contact_preference_history")
    op.drop_table("contact_preferences")
