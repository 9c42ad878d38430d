"""console sessions carry the role they were opened with (issue 21 item 5)

- `web_sessions.role`: `dpo` or `marketing` for a console session (NULL for older rows and
  for privacy-centre sessions; a console row without a role is a DPO's, as before). A
  single sign-on session has no client row to read the role from, so the role the identity
  provider vouched for at sign-in is kept here; a key-based session is ended when its
  client's role no longer matches.

Downgrading drops the column; marketers' sessions then read as DPO sessions, so the
downgrade ends every live console session that is not a DPO's first.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-04 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.execute(
        "UPDATE web_sessions SET ended_at = last_seen_at, ended_why = 'revoked' "
        "WHERE role IS NOT NULL AND role <> 'dpo' AND ended_at IS NULL"
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_column("role")
