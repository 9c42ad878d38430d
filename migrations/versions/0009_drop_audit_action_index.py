"""drop the index on audit_events.action: no query can use it, every event pays for it

The console's action filter matches `action = :a OR action LIKE '%:' || :a` (suffix match,
which a b-tree cannot serve), and the record of processing counts lookups, the bulk of the
trail, where a scan is cheaper than the index. Every audit event still paid for maintaining
the index on insert, on the hot paths included (single lookups and bulk resolution write
one event per identifier).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 06:00:00
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
