"""The chain head, read in a time that does not grow with the number of seal blocks.

The head is the seal with the highest `seq` (the chain visits events in increasing `seq`).
On PostgreSQL `audit_seals` is partitioned in blocks of `seq` with a `DEFAULT` partition
(`vault.audit.seal_blocks`); the `DEFAULT` partition keeps the planner from reading the
blocks in order, so `ORDER BY seq DESC LIMIT 1` alone opens, locks and probes every block:
0.3 ms over 30 blocks, 150 ms over 1,200.

So the head is first looked for at or above a lower bound taken from the newest signed
checkpoint: the checkpoint names a sealed `seq`, the chain only grows, so the head lies at
or above it. Floored to the start of its block (`HEAD_STEP`) and written into the SQL as a
constant, the bound lets the planner prune every block below it: what is read is the
checkpoint's block, the blocks above it (the few created ahead) and `DEFAULT` (never
pruned by an open-ended bound, so seals that landed there are still seen). A constant, not
a parameter: a prepared statement would switch to a generic plan after five runs, which
prunes only at executor start and still locks every block. The text changes once a block.

Any row found at or above the bound is the head, whatever the bound. Only when nothing is
(no checkpoint yet; or the seals above it were deleted, which `verify` reports) does the
read fall back to the plain descending read over every block; a wrong bound can make the
read slower, never wrong.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.seal_blocks import SEAL_BLOCK
from vault.storage.audit_tables import audit_checkpoints, audit_seals

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The bound is floored to a multiple of this (the blocks' size), so the statement's text,
#: and the plan PostgreSQL caches for it, changes once a block rather than once a round.
HEAD_STEP = SEAL_BLOCK
#: (position, mac, seq) of a seal.
Head = tuple[int, str, int]

#: The head over every block: the fall-back, and all there is to read for an empty chain.
HEAD = (
    select(audit_seals.c.chain_pos, audit_seals.c.chain_mac, audit_seals.c.seq)
    .order_by(audit_seals.c.seq.desc())
    .limit(1)
)
#: The `seq` of the newest checkpoint, along its table's primary key.
CHECKPOINT_SEQ = (
    select(audit_checkpoints.c.seq).order_by(audit_checkpoints.c.chain_pos.desc()).limit(1)
)


def lower_bound(near: int) -> int:
    """The start of the block of step `HEAD_STEP` that holds `near`."""
    return near - near % HEAD_STEP


@lru_cache(maxsize=8)
def head_from(low: int) -> Select[Any]:
    """`HEAD` among the seals with `seq >= low`, `low` written as a constant (see the module
    docstring); one statement object per bound, so the readers' compiled caches keep one."""
    return HEAD.where(audit_seals.c.seq >= literal_column(str(int(low))))


def _reads(near: int | None) -> list[Select[Any]]:
    """The statements to try in turn: bounded by `near` when there is one, then `HEAD`."""
    return [HEAD] if near is None else [head_from(lower_bound(near)), HEAD]


async def read_head(conn: AsyncConnection, near: int | None) -> Head | None:
    """(position, mac, seq) of the chain head, None for an empty chain; `near` is a sealed
    `seq` at or below the head (the newest checkpoint's), None when there is none."""
    for statement in _reads(near):
        found = (await conn.execute(statement)).first()
        if found is not None:
            return (found[0], found[1], found[2])
    return None


async def head_seq(ctx: VaultContext) -> int:
    """The chain head's `seq` (0 for an empty chain), read outside any write transaction
    (`VaultContext.read_rows`): the newest checkpoint's `seq`, then the bounded head."""
    checkpoint = await ctx.read_rows(CHECKPOINT_SEQ, {})
    near = int(checkpoint[0]["seq"]) if checkpoint else None
    for statement in _reads(near):
        found = await ctx.read_rows(statement, {})
        if found:
            return int(found[0]["seq"])
    return 0
