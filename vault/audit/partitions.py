"""Monthly partitions of the audit trail on PostgreSQL: created ahead, listed, dropped.

Migration 0030 makes `audit_events` a table range partitioned by month on `at`, with a
`DEFAULT` partition for events whose month has no partition. The jobs process calls
`ensure_ahead` at start and every `ENSURE_INTERVAL_SECONDS`, so the current month and the
next ones exist before the first event needs them, and in the same transaction the blocks
of `audit_seals` ahead (`vault.audit.seal_blocks`, migration 0037). The archive's prune
calls `drop_partition` for a month it archived, which drops the seal blocks that held only
that month's (and older) seals and trims the one it shares with the next month. SQLite
keeps one table: every function here does nothing there.

Why new partitions are attached instead of created with `CREATE TABLE … PARTITION OF`:
that takes an `ACCESS EXCLUSIVE` lock on `audit_events`, which waits behind every long
reader of the trail (an export, `audit verify`) while every lookup's insert queues behind
it. A table created on its own and then `ATTACH`ed needs only `SHARE UPDATE EXCLUSIVE` on
the parent, which inserts and reads do not conflict with. Attaching scans the `DEFAULT`
partition for rows of the new range (PostgreSQL refuses the partition while any are there),
so those rows move first, in the same transaction, with the `DEFAULT` partition locked
against inserts meanwhile; normally it is empty and the scan is nothing. Any DDL here runs
with a short `lock_timeout`: when a lock is not free at once the round fails and the next
one tries again (months are created well ahead), instead of stalling the hot path behind a
lock queue.

Two nodes racing are serialised by a transaction-scoped advisory lock; the second finds
the months present and creates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Date,
    TableClause,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy import table as table_clause
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import seal_blocks
from vault.audit.chain_links import EVENT_COLUMNS
from vault.clock import as_utc
from vault.storage.audit_tables import audit_events, audit_seals
from vault.storage.dialect import table_is_partitioned

if TYPE_CHECKING:
    from vault.context import VaultContext

TABLE = "audit_events"
DEFAULT_PARTITION = "audit_events_default"
#: Serialises the partition DDL of all nodes (any fixed 64-bit number, distinct from the
#: sealer's and the migrations' locks).
PARTITION_LOCK_ID = 0x7472_6573_6F72_0A19
#: How often the jobs process makes sure the months ahead exist.
ENSURE_INTERVAL_SECONDS = 3600.0
#: How long partition DDL waits for a table lock before it gives up for this round.
LOCK_TIMEOUT = "2s"
#: Sequence numbers per transaction when the seals a dropped month shares with a kept
#: seal block are deleted: short transactions that never stall the sealer.
TRIM_BATCH = 5000


def _table(name: str) -> TableClause:
    """A partition (or the parent) as a lightweight table with the event columns."""
    return table_clause(name, *(column(c) for c in EVENT_COLUMNS))


@dataclass(frozen=True, slots=True)
class MonthPartition:
    """One partition of the trail: its month (None for `DEFAULT`), table name and rows."""

    month: date | None
    name: str
    rows: int
    #: Whether `rows` is PostgreSQL's planner estimate (`reltuples`) rather than a count.
    estimated: bool


def month_of(moment: datetime) -> date:
    """The first day of the UTC month `moment` falls in."""
    utc = as_utc(moment)
    return date(utc.year, utc.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    """`audit_events_y2026m12` for December 2026 (the names migration 0030 gives)."""
    return f"{TABLE}_y{month.year:04d}m{month.month:02d}"


def _bound(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


async def _partitions(conn: AsyncConnection) -> dict[str, float]:
    """Name -> `reltuples` of every partition attached to `audit_events`."""
    rows = await conn.execute(
        text(
            "SELECT c.relname, c.reltuples FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": TABLE},
    )
    return {str(name): float(tuples) for name, tuples in rows}


async def _lock(conn: AsyncConnection) -> None:
    """Wait for the other nodes' partition DDL; bound every table lock that follows."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK_ID})
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


async def _months_in_default(conn: AsyncConnection) -> set[date]:
    at = _table(DEFAULT_PARTITION).c.at
    month = cast(func.date_trunc("month", func.timezone("UTC", at)), Date)
    rows = await conn.execute(select(month).distinct())
    return {found for (found,) in rows}


async def _create(conn: AsyncConnection, month: date, *, has_default: bool) -> None:
    """Create `month`'s partition beside the table, move its rows out of `DEFAULT` into it,
    and attach it (see the module docstring for why not `PARTITION OF`)."""
    name, lo, hi = partition_name(month), _bound(month), _bound(next_month(month))
    await conn.execute(text(f"CREATE TABLE {name} (LIKE {TABLE})"))
    if has_default:
        # Inserts routed to DEFAULT wait until the commit: none of the month's rows can
        # land there between the move and the attach (which checks that none is left).
        await conn.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN SHARE ROW EXCLUSIVE MODE"))
        default = _table(DEFAULT_PARTITION)
        moved = (
            delete(default)
            .where(default.c.at >= lo, default.c.at < hi)
            .returning(*default.c)
            .cte("moved")
        )
        await conn.execute(
            insert(_table(name)).from_select(
                list(EVENT_COLUMNS), select(*moved.c).order_by(moved.c.seq)
            )
        )
    await conn.execute(
        text(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        )
    )


async def ensure_ahead(ctx: VaultContext, now: datetime, months: int = 3) -> list[date]:
    """Make sure the month of `now` and the `months` after it have partitions, and give
    every month that has rows in `DEFAULT` a partition of its own (moving the rows into
    it), then the seal blocks ahead (`seal_blocks.ensure_blocks`); returns the months
    created. Idempotent; on SQLite, or before migration 0030, []."""
    wanted = [month_of(now)]
    for _ in range(months):
        wanted.append(next_month(wanted[-1]))
    async with ctx.transaction() as conn:
        if not await table_is_partitioned(conn, audit_events):
            return []
        await _lock(conn)
        present = await _partitions(conn)
        has_default = DEFAULT_PARTITION in present
        if has_default:
            wanted.extend(await _months_in_default(conn))
        created: list[date] = []
        for month in sorted(set(wanted)):
            if partition_name(month) not in present:
                await _create(conn, month, has_default=has_default)
                created.append(month)
        await seal_blocks.ensure_blocks(conn)
    return created


async def ensure_seal_blocks(
    ctx: VaultContext,
    *,
    block: int = seal_blocks.SEAL_BLOCK,
    ahead: int = seal_blocks.BLOCKS_AHEAD,
) -> list[seal_blocks.SealBlock]:
    """`seal_blocks.ensure_blocks` in a transaction of its own under the partition lock
    (`ensure_ahead` does it too); the blocks created, [] on SQLite."""
    async with ctx.transaction() as conn:
        if not await table_is_partitioned(conn, audit_seals):
            return []
        await _lock(conn)
        return await seal_blocks.ensure_blocks(conn, block=block, ahead=ahead)


async def list_seal_blocks(ctx: VaultContext) -> list[seal_blocks.SealBlock]:
    """The attached seal blocks in `seq` order ([] on SQLite)."""
    async with ctx.transaction() as conn:
        if not await table_is_partitioned(conn, audit_seals):
            return []
        return await seal_blocks.blocks(conn)


async def months(ctx: VaultContext, *, exact: bool = False) -> list[MonthPartition]:
    """The partitions of the trail, oldest month first and `DEFAULT` last, with their rows:
    the planner's estimate (cheap; -1 before the first ANALYZE) unless `exact`, which
    counts each partition (a full scan of every month). [] when not partitioned."""
    async with ctx.transaction() as conn:
        if not await table_is_partitioned(conn, audit_events):
            return []
        found: list[MonthPartition] = []
        for name, tuples in (await _partitions(conn)).items():
            month = _parse(name)
            if exact:
                counted = await conn.execute(select(func.count()).select_from(table_clause(name)))
                rows, estimated = int(counted.scalar_one()), False
            else:
                rows, estimated = int(tuples), True
            found.append(MonthPartition(month, name, rows, estimated))
    return sorted(found, key=lambda p: (p.month is None, p.month or date.min))


def _parse(name: str) -> date | None:
    """The month a partition name stands for; None for `DEFAULT` (or a foreign name)."""
    prefix = f"{TABLE}_y"
    if not name.startswith(prefix) or len(name) != len(prefix) + 7 or name[-3] != "m":
        return None
    return date(int(name[-7:-3]), int(name[-2:]), 1)


@dataclass(frozen=True, slots=True)
class DroppedMonth:
    """What a dropped partition held: its events and their seq range (None when it was
    empty), the seal blocks dropped whole with it and the seals deleted row by row from
    the block it shared with kept events."""

    events: int
    first_seq: int | None
    last_seq: int | None
    seal_blocks: tuple[str, ...]
    seals_deleted: int


async def drop_month(ctx: VaultContext, month: date) -> bool:
    """Detach and drop `month`'s partition together with the seals of its events (see
    `drop_partition`); True when it was dropped, False on SQLite, when the trail is not
    partitioned or the month has no partition."""
    return await drop_partition(ctx, month) is not None


async def drop_partition(
    ctx: VaultContext, month: date, *, within: tuple[int, int] | None = None
) -> DroppedMonth | None:
    """Detach and drop `month`'s partition, and with it, in the same transaction, every
    seal block (migration 0037) that lies wholly at or below the partition's last seq and
    below the first event kept; then delete, in short transactions of `TRIM_BATCH`
    sequence numbers, the seals of its events left in the block it shared with kept
    events (at most one block's worth). With `within` (lo, hi), only when every event in
    the partition has a seq in that range (the archived one); None when nothing was
    dropped (SQLite, not partitioned, no such partition, or events outside `within`).

    A crash between the two steps leaves seals without events in the dropped range: the
    archive's prune marks a month pruned before calling this, so `verify` starts after
    them, and its next run deletes them (`vault.audit.prune`).

    Refuses (`ValueError`) the current month and later ones by the vault's clock: events
    are still being written there. The partition is locked against inserts (`SHARE`)
    before its range is read, so no late event can slip in between. Detaching locks
    `audit_events` (and dropping a seal block `audit_seals`) exclusively for a moment; when
    that lock is not free within `LOCK_TIMEOUT` the storage error surfaces (as
    `Unavailable`) and nothing is changed, so the caller may retry."""
    month = date(month.year, month.month, 1)
    if month >= month_of(ctx.clock.now()):
        raise ValueError("only a month before the current one can be dropped")
    name = partition_name(month)
    async with ctx.transaction() as conn:
        if not await table_is_partitioned(conn, audit_events):
            return None
        await _lock(conn)
        if name not in await _partitions(conn):
            return None
        await conn.execute(text(f"LOCK TABLE {name} IN SHARE MODE"))
        seq = _table(name).c.seq
        held = select(func.count(), func.min(seq), func.max(seq))
        count, low, high = (await conn.execute(held)).one()
        if within is not None and count and (low < within[0] or high > within[1]):
            return None
        await conn.execute(text(f"ALTER TABLE {TABLE} DETACH PARTITION {name}"))
        await conn.execute(text(f"DROP TABLE {name}"))
        dropped = await seal_blocks.drop_blocks_through(conn, high) if count else []
    deleted = await trim_seals(ctx, low, high) if count else 0
    return DroppedMonth(int(count), low, high, tuple(block.name for block in dropped), deleted)


#: The next seal at or after `start` up to `hi` (along the primary key of the blocks).
_NEXT_SEAL = select(func.min(audit_seals.c.seq)).where(
    audit_seals.c.seq >= bindparam("start"), audit_seals.c.seq <= bindparam("hi")
)


async def trim_seals(ctx: VaultContext, low: int, high: int) -> int:
    """Delete the seals between `low` and `high` whose event is gone, in transactions of
    `TRIM_BATCH` sequence numbers that skip over the stretches without seals (the blocks
    already dropped); the number deleted. Seals of events still in the trail stay."""
    deleted, start = 0, low
    while start <= high:
        async with ctx.transaction() as conn:
            found = (await conn.execute(_NEXT_SEAL, {"start": start, "hi": high})).scalar()
            if found is None:
                break
            end = min(high, int(found) + TRIM_BATCH - 1)
            window = (audit_seals.c.seq >= found) & (audit_seals.c.seq <= end)
            kept = select(audit_events.c.seq).where(
                audit_events.c.seq >= found, audit_events.c.seq <= end
            )
            gone = await conn.execute(
                delete(audit_seals).where(window, audit_seals.c.seq.not_in(kept))
            )
        deleted += int(gone.rowcount or 0)
        start = end + 1
    return deleted
