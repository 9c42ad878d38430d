"""The sealer's chain-head read over many seal blocks (issue 19): bounded below by the newest
checkpoint, PostgreSQL prunes it to the newest blocks and `DEFAULT`; it falls back to the
read over every block when nothing lies above the bound, and agrees with that read always."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, insert, select

from tests.vault.audit.test_partitions_seal_blocks import _drop_all_blocks
from vault.audit import chain as audit_chain
from vault.audit import chain_head, partitions
from vault.audit import verify as audit_verify
from vault.context import VaultContext
from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals

NOW = timedelta(0)
#: Small blocks, many of them: 200 blocks of 4 hold seqs 0..799.
BLOCK = 4
BLOCKS = 200
_SCANNED = re.compile(r"Scan(?: Backward)? using \w+ on (audit_seals_\w+)")


async def _append(vault: VaultContext, n: int) -> None:
    row = {
        "at": vault.clock.now(),
        "actor_type": "client",
        "actor_id": "shop",
        "action": "client:contact:lookup",
        "decision": "allow",
    }
    async with vault.transaction() as conn:
        await conn.execute(insert(audit_events), [row] * n)


async def _true_head(vault: VaultContext) -> tuple[int, str, int] | None:
    async with vault.engine.connect() as conn:
        found = (await conn.execute(chain_head.HEAD)).first()
    return None if found is None else (found[0], found[1], found[2])


@pytest.fixture
async def many_blocks(
    vault: VaultContext, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[VaultContext]:
    """The vault on PostgreSQL with `BLOCKS` empty blocks of `BLOCK` created ahead and the
    head read's step set to the same size; the usual blocks again afterwards."""
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("seal blocks exist on PostgreSQL only")
    monkeypatch.setattr(chain_head, "HEAD_STEP", BLOCK)
    await _drop_all_blocks(vault)
    await partitions.ensure_seal_blocks(vault, block=BLOCK, ahead=BLOCKS)
    yield vault
    await _drop_all_blocks(vault)
    await partitions.ensure_seal_blocks(vault)


async def test_the_sealers_head_read_touches_only_the_newest_blocks(
    many_blocks: VaultContext,
) -> None:
    """With 790 seals in 198 of 200 blocks, the head read the sealer runs scans only the
    checkpoint's block, the two empty ones above it and `DEFAULT`, where the read without a
    bound scans every block."""
    vault = many_blocks
    assert len(await partitions.list_seal_blocks(vault)) == BLOCKS
    await _append(vault, 790)
    await audit_chain.seal_all(vault, grace=NOW)
    await _append(vault, 2)
    reads: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if "FROM audit_seals" in sql and "ORDER BY audit_seals.seq DESC" in sql:
            reads.append((sql, params))

    event.listen(vault.engine.sync_engine, "before_cursor_execute", record)
    try:
        report = await audit_chain.seal_pending(vault, grace=NOW)
    finally:
        event.remove(vault.engine.sync_engine, "before_cursor_execute", record)
    assert report.sealed == 2 and report.head_position == 792
    assert len(reads) == 1, reads  # found at the first try: no fall-back read
    async with vault.engine.connect() as conn:
        sql, params = reads[0]
        plan = "\n".join(r[0] for r in await conn.exec_driver_sql("EXPLAIN " + sql, params))
        literal = {"literal_binds": True}
        unbounded = chain_head.HEAD.compile(dialect=conn.dialect, compile_kwargs=literal)
        full = "\n".join(r[0] for r in await conn.exec_driver_sql(f"EXPLAIN {unbounded}"))
    assert set(_SCANNED.findall(plan)) == {
        "audit_seals_from_788",
        "audit_seals_from_792",
        "audit_seals_from_796",
        "audit_seals_default",
    }, plan
    assert len(set(_SCANNED.findall(full))) == BLOCKS + 1, full


async def test_the_head_read_sees_seals_in_default(many_blocks: VaultContext) -> None:
    """Seals past the last block land in `DEFAULT`; the bounded read still finds the head
    there, and the sealer goes on from it."""
    vault = many_blocks
    await _append(vault, 790)
    await audit_chain.seal_all(vault, grace=NOW)
    await _append(vault, 20)  # seqs 791..810: 800 and above have no block
    assert (await audit_chain.seal_pending(vault, grace=NOW, checkpoint_every=10**6)).sealed == 20
    head = await _true_head(vault)
    assert head is not None and head[2] == 810
    async with vault.transaction() as conn:
        assert await chain_head.read_head(conn, 790) == head
    await _append(vault, 3)
    assert (await audit_chain.seal_pending(vault, grace=NOW)).head_position == 813
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.verified == 813, report


async def test_the_head_read_falls_back_when_nothing_lies_above_the_bound(vault) -> None:
    """When the seals at and above the newest checkpoint are gone (deleted behind the
    vault's back), the bounded read finds nothing and the read over every seal gives the
    head; with no checkpoint at all the same; on both databases."""
    await _append(vault, 12)
    await audit_chain.seal_all(vault, grace=NOW)
    before = await _true_head(vault)
    async with vault.transaction() as conn:
        checkpoint = (
            await conn.execute(select(audit_checkpoints.c.seq, audit_checkpoints.c.chain_pos))
        ).all()[-1]
        assert checkpoint.chain_pos == 12
        assert await chain_head.read_head(conn, checkpoint.seq) == before
        await conn.execute(delete(audit_seals).where(audit_seals.c.seq > 7))
    expected = await _true_head(vault)
    assert expected is not None and expected[0] == 7
    async with vault.transaction() as conn:
        assert await chain_head.read_head(conn, checkpoint.seq) == expected
        assert await chain_head.read_head(conn, None) == expected
    assert await chain_head.head_seq(vault) == 7
    assert await audit_chain.unsealed_count(vault) == 5


async def test_the_head_read_of_an_empty_chain_is_none(vault) -> None:
    """No seal: no head, backlog of every event; on both databases."""
    async with vault.transaction() as conn:
        assert await chain_head.read_head(conn, None) is None
        assert await chain_head.read_head(conn, 5) is None
    await _append(vault, 3)
    assert await chain_head.head_seq(vault) == 0
    assert await audit_chain.unsealed_count(vault) == 3
