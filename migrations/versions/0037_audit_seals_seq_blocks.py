"""audit seals in blocks of sequence numbers on PostgreSQL (issue 19)

Pruning a month dropped its events' partition but deleted its seals row by row in the same
transaction: at 8.6 billion events a month that `DELETE` ran for hours while holding the
detach's lock on `audit_events`, and left the seal table bloated. Range partitioned on
`seq` (its primary key), the seals of a pruned month go by `DROP` of whole blocks
(`vault.audit.seal_blocks`, which explains the block size of 2^30) and only the block
shared with the next month is trimmed.

The existing rows move with `INSERT … SELECT` in sequence order into blocks from the one
holding the lowest seal to two past the newest event (as the jobs process keeps them
later), with a `DEFAULT` partition for seals beyond the last block. The primary key is
built after the rows are in. SQLite keeps one table: nothing changes there.

Downgrading copies the rows back into one plain table with the primary key `seq`.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-05 06:00:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

#: `vault.audit.seal_blocks.SEAL_BLOCK` and `BLOCKS_AHEAD` when this was written (a
#: migration keeps its own copy: it must build the same schema whatever the code says later).
BLOCK = 2**30
AHEAD = 2
COLUMNS = "seq, chain_pos, chain_mac"
DEFINITION = "seq BIGINT NOT NULL, chain_pos BIGINT NOT NULL, chain_mac VARCHAR(64) NOT NULL"


def _no_statement_timeout() -> None:
    """Copying the seals takes as long as there are seals (see migration 0030)."""
    op.execute("SET LOCAL statement_timeout = 0")


def _blocks() -> list[int]:
    """The first seq of every block: from the lowest seal's block to `AHEAD` blocks past
    the newest event or seal."""
    low, top = (
        op.get_bind()
        .execute(
            text(
                "SELECT (SELECT min(seq) FROM audit_seals_plain), greatest("
                "coalesce((SELECT max(seq) FROM audit_seals_plain), 0), "
                "coalesce((SELECT max(seq) FROM audit_events), 0))"
            )
        )
        .one()
    )
    first = (int(low) if low is not None else int(top)) // BLOCK * BLOCK
    return list(range(first, int(top) + AHEAD * BLOCK, BLOCK))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _no_statement_timeout()
    op.execute("ALTER TABLE audit_seals RENAME TO audit_seals_plain")
    op.execute(
        "ALTER TABLE audit_seals_plain RENAME CONSTRAINT pk_audit_seals TO pk_audit_seals_plain"
    )
    op.execute(f"CREATE TABLE audit_seals ({DEFINITION}) PARTITION BY RANGE (seq)")
    for low in _blocks():
        op.execute(
            f"CREATE TABLE audit_seals_from_{low} PARTITION OF audit_seals "
            f"FOR VALUES FROM ({low}) TO ({low + BLOCK})"
        )
    op.execute("CREATE TABLE audit_seals_default PARTITION OF audit_seals DEFAULT")
    op.execute(
        f"INSERT INTO audit_seals ({COLUMNS}) "  # noqa: S608 - names from code
        f"SELECT {COLUMNS} FROM audit_seals_plain ORDER BY seq"
    )
    op.execute("ALTER TABLE audit_seals ADD CONSTRAINT pk_audit_seals PRIMARY KEY (seq)")
    op.execute("DROP TABLE audit_seals_plain")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _no_statement_timeout()
    op.execute("ALTER TABLE audit_seals RENAME TO audit_seals_partitioned")
    op.execute(
        "ALTER TABLE audit_seals_partitioned "
        "RENAME CONSTRAINT pk_audit_seals TO pk_audit_seals_partitioned"
    )
    op.execute(f"CREATE TABLE audit_seals ({DEFINITION})")
    op.execute(
        f"INSERT INTO audit_seals ({COLUMNS}) "  # noqa: S608 - names from code
        f"SELECT {COLUMNS} FROM audit_seals_partitioned ORDER BY seq"
    )
    op.execute("ALTER TABLE audit_seals ADD CONSTRAINT pk_audit_seals PRIMARY KEY (seq)")
    op.execute("DROP TABLE audit_seals_partitioned")
