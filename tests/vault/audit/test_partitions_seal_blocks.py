"""Blocks of `audit_seals` on PostgreSQL (migration 0037): seals land in the block of their
seq, blocks are created ahead (moving strays out of `DEFAULT`), and the chain verifies
across them; SQLite keeps one table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from tests.vault.audit.test_partitions import _at, _events, _rows_in
from vault.audit import partitions, seal_blocks
from vault.audit import verify as audit_verify
from vault.clock import FrozenClock
from vault.context import VaultContext

#: Small blocks, so a handful of events spans several of them.
BLOCK = 3


async def _drop_all_blocks(vault: VaultContext) -> None:
    async with vault.engine.begin() as conn:
        for block in await seal_blocks.blocks(conn):
            await conn.execute(text(f"DROP TABLE {block.name}"))
        await conn.execute(text("DELETE FROM audit_seals_default"))


@pytest.fixture
async def small_blocks(vault: VaultContext) -> AsyncIterator[VaultContext]:
    """The vault on PostgreSQL with the (empty) seal table in blocks of `BLOCK`, six ahead;
    afterwards the blocks of the usual size again, for the next tests of the run."""
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("seal blocks exist on PostgreSQL only")
    await _drop_all_blocks(vault)
    await partitions.ensure_seal_blocks(vault, block=BLOCK, ahead=6)
    yield vault
    await _drop_all_blocks(vault)
    await partitions.ensure_seal_blocks(vault)


async def test_seals_land_in_their_block_and_blocks_are_created_ahead(
    small_blocks: VaultContext, clock: FrozenClock
) -> None:
    """Seals go to the block of their seq, those past the last block to `DEFAULT`; creating
    ahead adds the missing blocks after the last one, moves the strays into theirs, adds
    nothing when called again, and the chain verifies across the blocks."""
    vault = small_blocks
    # Six blocks ahead from an empty trail: seqs 0..17.
    assert [b.low for b in await partitions.list_seal_blocks(vault)] == list(range(0, 18, 3))
    seqs = await _events(vault, clock, *(_at(2037, 1, day) for day in range(1, 21)))
    assert await _rows_in(vault, "audit_seals_from_3") == [s for s in seqs if 3 <= s < 6]
    strays = [s for s in seqs if s >= 18]
    assert strays and await _rows_in(vault, seal_blocks.DEFAULT_PARTITION) == strays

    created = await partitions.ensure_seal_blocks(vault, block=BLOCK, ahead=2)
    top = max(seqs)
    assert [b.low for b in created] == list(range(18, top + 2 * BLOCK, BLOCK))
    assert await _rows_in(vault, seal_blocks.DEFAULT_PARTITION) == []
    assert await _rows_in(vault, "audit_seals_from_18") == [s for s in seqs if 18 <= s < 21]
    assert await partitions.ensure_seal_blocks(vault, block=BLOCK, ahead=2) == []
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.verified == len(seqs), report


async def test_ensure_ahead_keeps_the_seal_blocks_ahead_of_the_newest_event(
    small_blocks: VaultContext, clock: FrozenClock
) -> None:
    """The jobs round's `ensure_ahead` also creates the seal blocks ahead (of the usual
    size, after the last block), so a seal never waits for a block of its own."""
    vault = small_blocks
    before = await partitions.list_seal_blocks(vault)
    await partitions.ensure_ahead(vault, datetime(2037, 1, 1, tzinfo=UTC), months=0)
    after = await partitions.list_seal_blocks(vault)
    added = after[len(before) :]
    assert after[: len(before)] == before
    assert added and added[0].low == before[-1].high
    assert all(b.high - b.low == seal_blocks.SEAL_BLOCK for b in added)


async def test_no_seal_blocks_on_sqlite(vault: VaultContext) -> None:
    """On SQLite `audit_seals` stays one table: there are no blocks to list or create."""
    if vault.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL has seal blocks")
    assert await partitions.ensure_seal_blocks(vault, block=BLOCK) == []
    assert await partitions.list_seal_blocks(vault) == []


async def test_blocks_ahead_count_a_seal_above_every_event(
    small_blocks: VaultContext, clock: FrozenClock
) -> None:
    """The newest seq in use is read from the highest block that holds a seal (the empty
    blocks above it skipped), so a seal above every event (its event deleted) still moves
    the blocks ahead past it."""
    vault = small_blocks
    seqs = await _events(vault, clock, _at(2037, 1, 1), _at(2037, 1, 2))
    present = await partitions.list_seal_blocks(vault)
    lone = present[-1].high - 1
    assert lone > max(seqs) + BLOCK  # empty blocks lie between the events and the seal
    async with vault.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO audit_seals (seq, chain_pos, chain_mac) VALUES (:s, 0, :m)"),
            {"s": lone, "m": "0" * 64},
        )
    created = await partitions.ensure_seal_blocks(vault, block=BLOCK, ahead=2)
    assert [b.low for b in created] == [lone + 1, lone + 1 + BLOCK]
