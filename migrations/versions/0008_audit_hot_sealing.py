"""audit sealing without index churn: no index on chain_pos, room for HOT updates

Sealing writes chain_pos and chain_mac into events already stored. With a unique index on
chain_pos every seal was a non-HOT update: PostgreSQL wrote a new entry into each of the
table's indexes for every event (measured 27 µs per event). Without an index on the sealed
columns, and with free space left in each page (fillfactor 75), the update stays on the page
(HOT) and touches no index (11 µs). The chain is in sequence order, so the head and the
verification walk go by the primary key; uniqueness of positions is what `verify` checks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 17:10:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_chain_pos"), type_="unique")
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages written from now on; existing pages get it at the next rewrite.
        op.execute("ALTER TABLE audit_events SET (fillfactor = 75)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_events RESET (fillfactor)")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_chain_pos"), ["chain_pos"])
