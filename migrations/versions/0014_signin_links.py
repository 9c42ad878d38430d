"""sign-in links for a customer whose code sign-in is locked

Security finding 7's escalating lockout (15 min, 1 h, 24 h after wrong codes) let anyone
who typed wrong codes for a customer lock the real customer out of the privacy centre.
While the lock holds, a code request now mails a one-time sign-in link to the stored
e-mail address instead of a code: its token has 256 bits, so it needs no attempt limit and
no lock. The link belongs to the request's challenge row, which is written for every
request (known or unknown address, code or link), so the HMAC of its token goes into a new
nullable column of that row, `self_service_challenges.link_hash`, with a unique index for
the lookup when the link is opened. The token itself is never stored.

Downgrading drops the column: links mailed until then no longer open a session.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("self_service_challenges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_self_service_challenges_link_hash"), ["link_hash"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("self_service_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_self_service_challenges_link_hash"))
        batch_op.drop_column("link_hash")
