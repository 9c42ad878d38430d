"""Pruning with `audit_seals` in blocks (PostgreSQL, migration 0037): the seal blocks of the
pruned months are dropped whole (gone from `pg_inherits`, not emptied by `DELETE`), only
the block shared with the first kept month is trimmed, and a prune that dies between the
two steps is finished by the next one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from tests.vault.audit.test_archive import ADMIN, _store, _trail
from tests.vault.audit.test_partitions import _rows_in
from tests.vault.audit.test_partitions_seal_blocks import small_blocks
from tests.vault.audit.test_prune_partitions import _archived_range, partitioned
from vault.audit import partitions
from vault.audit.archive import archive_before
from vault.audit.prune import prune
from vault.audit.verify import verify_chain
from vault.clock import FrozenClock
from vault.context import VaultContext

__all__ = ["partitioned", "small_blocks"]  # fixtures used by the tests here


async def _inherits(vault: VaultContext) -> set[str]:
    """The partitions PostgreSQL's catalog lists under `audit_seals`."""
    async with vault.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'audit_seals'::regclass"
            )
        )
        return {str(name) for (name,) in rows}


async def _archived_trail(vault: VaultContext, clock: FrozenClock, tmp_path: Path) -> int:
    """January to March sealed, January and February archived; the last archived seq."""
    await _trail(vault, clock)
    await archive_before(vault, "2026-03", _store(tmp_path), actor=ADMIN)
    return (await _archived_range(vault, "2026-02"))[1]


async def test_pruning_drops_whole_seal_blocks_and_trims_the_shared_one(
    partitioned: VaultContext, small_blocks: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """After pruning January and February, every seal block wholly within them is gone
    from the catalog, the block straddling February's end keeps exactly its seals after
    it, every other block stays, and verify passes from the archive's end."""
    vault = partitioned
    top = await _archived_trail(vault, clock, tmp_path)
    blocks = await partitions.list_seal_blocks(vault)
    whole = {b.name for b in blocks if b.high - 1 <= top}
    (shared,) = [b for b in blocks if b.low <= top < b.high - 1]
    kept_seals = [s for s in await _rows_in(vault, shared.name) if s > top]
    assert whole and kept_seals and whole <= await _inherits(vault)

    report = await prune(vault, 1, actor=ADMIN)
    assert report.months == ["2026-01", "2026-02"]
    listed = await _inherits(vault)
    assert not whole & listed
    assert {b.name for b in blocks} - whole <= listed
    assert await _rows_in(vault, shared.name) == kept_seals
    checked = await verify_chain(vault)
    assert checked.ok, checked.problem


async def test_a_prune_killed_after_dropping_the_blocks_is_finished_by_the_next(
    partitioned: VaultContext,
    small_blocks: VaultContext,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prune that dies after the partition and the whole seal blocks were dropped but
    before the shared block was trimmed leaves seals of pruned events, which verify
    ignores and the next prune deletes; verify passes before and after."""
    vault = partitioned
    top = await _archived_trail(vault, clock, tmp_path)
    (shared,) = [b for b in await partitions.list_seal_blocks(vault) if b.low <= top < b.high]

    async def killed(*_: object) -> int:
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(partitions, "trim_seals", killed)
        with pytest.raises(RuntimeError):
            await prune(vault, 1, actor=ADMIN)
    assert [s for s in await _rows_in(vault, shared.name) if s <= top]
    meanwhile = await verify_chain(vault)
    assert meanwhile.ok, meanwhile.problem

    await prune(vault, 1, actor=ADMIN)
    assert not [s for s in await _rows_in(vault, shared.name) if s <= top]
    checked = await verify_chain(vault)
    assert checked.ok, checked.problem
