"""Deleting what the admin area keeps only for a while: idempotency records past their 24
hours and rate-limit counters whose window ended.

Both are run with every retention sweep (`tresor retention run` and the periodic job), so
a deployment that runs only the CLI on a schedule keeps these tables small too. Neither
holds contact data; they go because what is no longer needed is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vault.admin.idempotency import purge_expired
from vault.admin.limits import purge_counters

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class Purged:
    idempotency_records: int
    limit_counters: int


async def purge_transient(ctx: VaultContext) -> Purged:
    """Delete expired idempotency records and ended limit counters; how many of each."""
    records = await purge_expired(ctx)
    counters = await purge_counters(ctx, ctx.clock.now())
    return Purged(idempotency_records=records, limit_counters=counters)
