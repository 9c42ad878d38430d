"""shared limit counters, per-client quotas and key hygiene (issue 15)

- `limit_counters`: fixed-window counters every process and node shares (failed
  authentications per client address, a client's request rate and daily lookups), so
  `--workers N` no longer multiplies a limit. Keys are digests and client ids.
- `clients.rate_limit`, `rate_window`, `daily_lookups`: optional per-client quotas.
- `clients.previous_key_hash`, `previous_key_until`: the key replaced by `rotate-key`,
  valid for a grace period; `key_created_at`, `last_used_at`: for `clients list` and
  `clients unused`.

Downgrading drops them: quotas are lifted and a rotated key's predecessor stops working.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limit_counters",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_limit_counters")),
    )
    op.create_index(
        op.f("ix_limit_counters_expires_at"), "limit_counters", ["expires_at"], unique=False
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_key_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("previous_key_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("key_created_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rate_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rate_window", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("daily_lookups", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_clients_previous_key_hash"), ["previous_key_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_clients_previous_key_hash"), type_="unique")
        for column in (
            "daily_lookups",
            "rate_window",
            "rate_limit",
            "last_used_at",
            "key_created_at",
            "previous_key_until",
            "previous_key_hash",
        ):
            batch_op.drop_column(column)
    op.drop_index(op.f("ix_limit_counters_expires_at"), table_name="limit_counters")
    op.drop_table("limit_counters")
