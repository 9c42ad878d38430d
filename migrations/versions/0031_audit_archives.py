"""audit archives: months of the audit trail written as signed segments (issue 19 item 1)

- `audit_archives`: one row per archived month (`tresor audit archive`), written only after
  its segment was uploaded: the segment's sequence and chain range, the MAC it starts
  from and ends at, where it went and its SHA-256, and when its events were pruned
  (`tresor audit prune`).

Downgrading drops the table; segments already written stay where they are, and events
already pruned are gone from the database (the archive holds them).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-04 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_archives",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("first_pos", sa.BigInteger(), nullable=False),
        sa.Column("last_pos", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("prev_mac", sa.String(length=64), nullable=False),
        sa.Column("last_mac", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("archived_at", TZ, nullable=False),
        sa.Column("pruned_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_audit_archives")),
        sa.UniqueConstraint("last_seq", name=op.f("uq_audit_archives_last_seq")),
    )


def downgrade() -> None:
    op.drop_table("audit_archives")
