"""`audit_seals` in fixed blocks of sequence numbers on PostgreSQL: created ahead, dropped
whole when the archive's prune removes the months that held them.

Migration 0037 makes `audit_seals` a table range partitioned on `seq` (its primary key),
one partition per `SEAL_BLOCK` sequence numbers, named after the block's first number
(`audit_seals_from_1073741824`), with a `DEFAULT` partition as the safety net for seals
beyond the last block. A seal has no time, only its event's `seq`, and every reader of
seals goes by `seq` (the chain head, the sealer's and verify's anchors, verify's and the
archive's pages), so blocks of `seq` are what PostgreSQL can prune, where months could not.

Why blocks of 2^30 (about 1.07 billion seals): every partition costs each statement that
cannot prune partitions (the chain head is "the last seal", `ORDER BY seq DESC LIMIT 1`,
which a `DEFAULT` partition keeps from reading the blocks in order) an index probe, a lock
and executor set-up; measured here, that read took 0.3 ms over 30 partitions, 1.5 ms over
100 and 3 to 25 ms over 300, and 1,200 partitions made it cost 150 ms. (The sealer's head
read is now bounded below by the newest checkpoint and pruned to the newest blocks,
`vault.audit.chain_head`, as is verify's top; `_frontier` below reads the blocks one by one
from the top and stops at the first that holds a seal.)
At issue 19's scale (8.6 billion events a month, 36 months kept) 2^30 gives 8 blocks a
month and about 290 in all; 2^24 would give 18,000. What a block costs on the other side
is the prune: the block that straddles the end of a pruned month is trimmed by `DELETE`
(in short batches), so at most one block's rows are ever deleted per month instead of the
whole month's.
Blocks are found by their bounds in the catalog, not by this constant, so a different
block size later only changes the blocks created from then on.

The functions here take a connection inside a transaction that already holds the partition
advisory lock and a short `lock_timeout` (`vault.audit.partitions`), and do nothing on
SQLite, which keeps one table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.storage.audit_tables import audit_seals
from vault.storage.dialect import table_is_partitioned

TABLE = "audit_seals"
DEFAULT_PARTITION = "audit_seals_default"
#: Sequence numbers per block (see the module docstring for why this size).
SEAL_BLOCK = 2**30
#: Empty blocks kept ready above the newest event: at one node's 3,300 events/s a block
#: lasts about four days, at ten nodes' about nine hours, against an hourly jobs round.
BLOCKS_AHEAD = 2
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True, order=True)
class SealBlock:
    """One attached block: the seals with `low <= seq < high`."""

    low: int
    high: int
    name: str


def block_name(low: int) -> str:
    return f"{TABLE}_from_{low}"


async def blocks(conn: AsyncConnection) -> list[SealBlock]:
    """The attached blocks in `seq` order, by their bounds in the catalog (not `DEFAULT`)."""
    rows = await conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": TABLE},
    )
    found = []
    for name, bound in rows:
        match = _BOUND.search(str(bound))
        if match is not None:
            found.append(SealBlock(int(match[1]), int(match[2]), str(name)))
    return sorted(found)


async def _frontier(conn: AsyncConnection, present: list[SealBlock]) -> int:
    """The highest sequence number in use: the newest event's or seal's (0 when none).
    The seals' is read block by block from the top, one index probe each, stopping at the
    first block that holds one (the blocks created ahead are empty): `max(seq)` over the
    whole table would probe every block (see the module docstring); `DEFAULT`'s strays
    are the caller's."""
    events = await conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_events"))
    top = int(events.scalar_one())
    quote = conn.dialect.identifier_preparer.quote
    for block in reversed(present):
        sealed = await conn.execute(text(f"SELECT max(seq) FROM {quote(block.name)}"))  # noqa: S608 - a catalog name, quoted
        found = sealed.scalar_one()
        if found is not None:
            return max(top, int(found))
    return top


async def _strays(conn: AsyncConnection) -> tuple[int, int] | None:
    """(lowest, highest) seq of the seals in `DEFAULT`; None when it is empty (as it should
    be: seals land there only when no jobs process created their block in time)."""
    found = f"SELECT min(seq), max(seq) FROM {DEFAULT_PARTITION}"  # noqa: S608 - from code
    rows = await conn.execute(text(found))
    low, high = rows.one()
    return None if low is None else (int(low), int(high))


async def ensure_blocks(
    conn: AsyncConnection, *, block: int = SEAL_BLOCK, ahead: int = BLOCKS_AHEAD
) -> list[SealBlock]:
    """Make the blocks reach `ahead` blocks past the newest event (and past every seal that
    landed in `DEFAULT`, moving those into their block); the blocks created. Idempotent;
    [] on SQLite or before migration 0037. New blocks follow the last one without gap."""
    if not await table_is_partitioned(conn, audit_seals):
        return []
    present = await blocks(conn)
    frontier = await _frontier(conn, present)
    strays = await _strays(conn)
    target = max(frontier, strays[1] if strays else 0) + ahead * block
    if present:
        low = present[-1].high
    else:
        low = min(frontier, strays[0] if strays else frontier) // block * block
    created = []
    while low < target:
        high = low + block
        move = strays is not None and strays[0] < high and strays[1] >= low
        created.append(await _create(conn, low, high, move=move))
        low = high
    return created


async def _create(conn: AsyncConnection, low: int, high: int, *, move: bool) -> SealBlock:
    """Create the block beside the table, move its seals out of `DEFAULT` into it, and
    attach it: `ATTACH` takes only `SHARE UPDATE EXCLUSIVE` on `audit_seals`, so the
    sealer's `COPY` and every reader go on (as for the monthly event partitions)."""
    name = block_name(low)
    await conn.execute(text(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)"))
    if move:
        # The sealer's COPY into DEFAULT waits until the commit: no seal of the block can
        # land there between the move and the attach (which checks that none is left).
        await conn.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN SHARE ROW EXCLUSIVE MODE"))
        await conn.execute(
            text(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608 - names from code
                f"WHERE seq >= {low} AND seq < {high} RETURNING seq, chain_pos, chain_mac) "
                f"INSERT INTO {name} (seq, chain_pos, chain_mac) "
                "SELECT seq, chain_pos, chain_mac FROM moved ORDER BY seq"
            )
        )
    await conn.execute(
        text(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})")
    )
    return SealBlock(low, high, name)


async def drop_blocks_through(conn: AsyncConnection, top: int) -> list[SealBlock]:
    """Drop (`DROP TABLE`, no row deleted) every block whose sequence numbers all lie at or
    below `top` and below the first event still in the trail, so no kept event loses its
    seal; the blocks dropped. The caller removed the events up to `top` in this same
    transaction. [] on SQLite or before migration 0037."""
    if not await table_is_partitioned(conn, audit_seals):
        return []
    first = await conn.execute(text("SELECT min(seq) FROM audit_events"))
    kept = first.scalar_one()
    limit = top if kept is None else min(top, int(kept) - 1)
    dropped = [b for b in await blocks(conn) if b.high - 1 <= limit]
    for found in dropped:
        # Takes ACCESS EXCLUSIVE on audit_seals for the moment of the drop, bounded by the
        # caller's lock_timeout like the detach of the month.
        await conn.execute(text(f"DROP TABLE {found.name}"))
    return dropped
