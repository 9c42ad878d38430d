"""follow-ups get an assignee and a closing outcome (issue 21 item 6)

- `followups.assignee`: the client or team name that is to make the contact (NULL: anyone
  allowed the purpose); the reminder listing filters on it, so it is indexed with the
  status and the window's start.
- `followups.outcome`: how the CRM closed the follow-up (status `closed`), a kind from a
  fixed list, never free text.

Downgrading drops both columns; a `closed` follow-up then reads as closed without outcome.

Revision ID: 0029
Revises: 0024
Create Date: 2026-12-04 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch_op.create_index(
            "ix_followups_assignee_status_due_from", ["assignee", "status", "due_from"]
        )


def downgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index("ix_followups_assignee_status_due_from")
        batch_op.drop_column("outcome")
        batch_op.drop_column("assignee")
