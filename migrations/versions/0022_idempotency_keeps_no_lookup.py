"""idempotency records keep no lookup answer; stored answers keep their ETag (issue 17)

A lookup or batch lookup sent with an `Idempotency-Key` used to store its answer (contact
data, sealed) for 24 hours and hand it out again to a retry, past a withdrawal, an
objection, a restriction or an erasure made in between; an erasure could not shred those
copies. Lookups now keep no answer (a retry runs again). This migration deletes every
record kept so far, because the stored copies of lookup answers cannot be told apart from
the others without opening them: the only cost is that a client retrying a write across the
upgrade does it once more, as it would have without a key.

- `idempotency_records.response_etag`: the stored answer's `ETag`, sent with its replay.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 19:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_records")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_etag", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_column("response_etag")
