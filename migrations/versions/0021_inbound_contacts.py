"""contacts the customer started (issue 21)

- `contacts.direction`: "outbound" (every contact so far) or "inbound" for a contact the
  customer started (an inbound call, a reply), recorded at 0 points; the calamity
  cool-down counts outbound calamity contacts only.

Downgrading drops the column: inbound contacts then read as 0-point outbound ones.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("direction", sa.String(length=8), nullable=False, server_default="outbound")
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("direction")
