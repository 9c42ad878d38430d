"""KEK rotation: add a version, re-wrap every DEK online, retire versions nothing uses.

Re-wrapping runs in small batches, each its own short transaction guarded by the old
(version, blob) pair, so a server keeps serving throughout and a concurrent change to a
subject (erasure, another rotation) is never overwritten. Field ciphertexts do not change:
only the wrapping of each subject's DEK does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from vault import audit, erasure
from vault.audit import Actor, AuditAction, Decision
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.storage.tables import subjects


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_version: int
    rewrapped: int
    remaining: int


async def rewrap_all(ctx: VaultContext, actor: Actor, *, batch: int = 500) -> int:
    """Re-wrap every DEK not under the active KEK version; returns how many were re-wrapped."""
    total = 0
    while True:
        active = ctx.kek.active_version()
        async with ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(subjects.c.id, subjects.c.kek_version, subjects.c.wrapped_dek)
                    .where(subjects.c.wrapped_dek.is_not(None))
                    .where(subjects.c.kek_version != active)
                    .limit(batch)
                )
            ).all()
            done = 0
            for row in rows:
                version, blob = ctx.deks.rewrap(row.id, row.kek_version, row.wrapped_dek)
                result = await conn.execute(
                    update(subjects)
                    .where(subjects.c.id == row.id)
                    .where(subjects.c.kek_version == row.kek_version)
                    .where(subjects.c.wrapped_dek == row.wrapped_dek)
                    .values(kek_version=version, wrapped_dek=blob)
                )
                done += result.rowcount
            if rows:
                await audit.record(
                    conn,
                    at=ctx.clock.now(),
                    actor=actor,
                    action=AuditAction.KEYS_REWRAP,
                    decision=Decision.ALLOW,
                    detail={"count": done, "to_version": active},
                )
        total += done
        if not rows:
            return total


async def versions_in_use(ctx: VaultContext) -> dict[int, int]:
    async with ctx.transaction() as conn:
        rows = (
            await conn.execute(
                select(subjects.c.kek_version, func.count())
                .where(subjects.c.wrapped_dek.is_not(None))
                .group_by(subjects.c.kek_version)
            )
        ).all()
    return {int(v): int(n) for v, n in rows}


async def rotate(ctx: VaultContext, actor: Actor) -> RotationReport:
    """Add a KEK version, make it active, and re-wrap every DEK under it."""
    keyring = ctx.kek
    if not isinstance(keyring, LocalKeyring):
        raise TypeError("rotation is implemented for the local keyring provider")
    new_version = keyring.add_version()
    async with ctx.transaction() as conn:
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=AuditAction.KEYS_ROTATE,
            decision=Decision.ALLOW,
            detail={"new_version": new_version},
        )
    rewrapped = await rewrap_all(ctx, actor)
    # Keys of fields retained after erasure (Art. 17(3)) are wrapped by the KEK too.
    rewrapped += await erasure.rewrap_retained(ctx, actor)
    in_use = await versions_in_use(ctx)
    for version, count in (await erasure.retained_versions_in_use(ctx)).items():
        in_use[version] = in_use.get(version, 0) + count
    remaining = sum(n for v, n in in_use.items() if v != new_version)
    return RotationReport(new_version=new_version, rewrapped=rewrapped, remaining=remaining)


async def retire_unused(ctx: VaultContext, actor: Actor) -> list[int]:
    """Remove KEK versions that no stored DEK is wrapped under any more."""
    keyring = ctx.kek
    if not isinstance(keyring, LocalKeyring):
        raise TypeError("retiring is implemented for the local keyring provider")
    in_use = set((await versions_in_use(ctx)).keys())
    in_use |= set((await erasure.retained_versions_in_use(ctx)).keys())
    removed = keyring.retire_versions(keep=in_use)
    if removed:
        async with ctx.transaction() as conn:
            await audit.record(
                conn,
                at=ctx.clock.now(),
                actor=actor,
                action=AuditAction.KEYS_RETIRE,
                decision=Decision.ALLOW,
                detail={"retired": removed},
            )
    return removed
