"""contact pressure: monthly budgets and contact records

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_budgets",
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("used_tenths", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "month", name=op.f("pk_contact_budgets")),
    )
    with op.batch_alter_table("contact_budgets", schema=None) as batch_op:
        batch_op.create_index("ix_contact_budgets_month", ["month"], unique=False)
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=32), nullable=False),
        sa.Column("points_tenths", sa.Integer(), nullable=False),
        sa.Column("touchpoint", sa.String(length=100), nullable=True),
        sa.Column("purpose", sa.String(length=100), nullable=True),
        sa.Column("client", sa.String(length=120), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_subject_id_at", ["subject_id", "at"], unique=False)
        batch_op.create_index("ix_contacts_month", ["month"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_month")
        batch_op.drop_index("ix_contacts_subject_id_at")
    op.drop_table("contacts")
    with op.batch_alter_table("contact_budgets", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_budgets_month")
    op.drop_table("contact_budgets")
