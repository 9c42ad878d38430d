"""Audit trails for tests that need events in the chain but not the actions behind them:
lookups of one fixed subject recorded directly, sealed, and the chain verified, each in a
vault opened from settings and closed again (as a separate process would)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from vault.audit import chain as audit_chain
from vault.audit import verify as audit_verify
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.settings import Settings

SUBJECT = "0f0e0d0c-0b0a-4908-8706-050403020100"


async def record_sealed_lookups(
    settings: Settings, count: int = 0, moments: Sequence[datetime] = ()
) -> None:
    """`count` allowed lookups now, or one at each of `moments` (the clock set to each), then
    every event sealed with a checkpoint of the head."""
    clock = FrozenClock(moments[0]) if moments else None
    ctx = VaultContext.open(settings, clock=clock) if clock else VaultContext.open(settings)
    try:
        for i in range(len(moments) or count):
            if clock:
                clock.set(moments[i])
            async with ctx.transaction() as conn:
                await record(
                    conn,
                    at=ctx.clock.now(),
                    actor=Actor("client", "shop", f"req-{i}"),
                    action=AuditAction.LOOKUP,
                    decision=Decision.ALLOW,
                    subject_id=SUBJECT,
                    purpose="order.delivery",
                    fields=["email"],
                )
        await audit_chain.seal_all(ctx, grace=timedelta(0))
    finally:
        await ctx.close()


async def verify_chain(settings: Settings) -> audit_verify.VerifyReport:
    """The whole chain verified by a vault of its own."""
    ctx = VaultContext.open(settings)
    try:
        return await audit_verify.verify_chain(ctx)
    finally:
        await ctx.close()
