"""KEK rotation: add a version, re-wrap every DEK online, retire versions nothing uses.

Re-wrapping runs in small batches, each its own short transaction guarded by the old
(version, blob) pair, so a server keeps serving throughout and a concurrent change to a
subject (erasure, another rotation) is never overwritten. Field ciphertexts do not change:
only the wrapping of each subject's DEK does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Table, func, select, update

from vault import audit, erasure
from vault.audit import Actor, AuditAction, Decision
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.storage.tables import retained_fields, subjects


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_version: int
    rewrapped: int
    remaining: int


@dataclass(frozen=True, slots=True)
class _WrappedKeys:
    """A table whose rows hold a key wrapped by the KEK, and what each wrap is bound to."""

    table: Table
    key_column: str
    wrap_id: Callable[[str], str]
    audit_detail: dict[str, str]


_SUBJECT_DEKS = _WrappedKeys(subjects, "wrapped_dek", lambda row_id: row_id, {})
#: Keys of fields kept after erasure (Art. 17(3)); a KEK version they need must not retire.
_RETAINED_KEYS = _WrappedKeys(
    retained_fields, "wrapped_key", erasure.retained_key_id, {"keys": "retained"}
)


async def _rewrap(ctx: VaultContext, actor: Actor, keys: _WrappedKeys, batch: int) -> int:
    table, key = keys.table, keys.table.c[keys.key_column]
    total = 0
    while True:
        active = ctx.kek.active_version()
        async with ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(table.c.id, table.c.kek_version, key.label("blob"))
                    .where(key.is_not(None))
                    .where(table.c.kek_version != active)
                    .limit(batch)
                )
            ).all()
            done = 0
            for row in rows:
                version, blob = ctx.deks.rewrap(keys.wrap_id(row.id), row.kek_version, row.blob)
                result = await conn.execute(
                    update(table)
                    .where(table.c.id == row.id)
                    .where(table.c.kek_version == row.kek_version)
                    .where(key == row.blob)
                    .values({"kek_version": version, keys.key_column: blob})
                )
                done += result.rowcount
            if rows:
                await audit.record(
                    conn,
                    at=ctx.clock.now(),
                    actor=actor,
                    action=AuditAction.KEYS_REWRAP,
                    decision=Decision.ALLOW,
                    detail={"count": done, "to_version": active, **keys.audit_detail},
                )
        total += done
        if not rows:
            return total


async def _versions(ctx: VaultContext, keys: _WrappedKeys) -> dict[int, int]:
    table, key = keys.table, keys.table.c[keys.key_column]
    async with ctx.transaction() as conn:
        rows = (
            await conn.execute(
                select(table.c.kek_version, func.count())
                .where(key.is_not(None))
                .group_by(table.c.kek_version)
            )
        ).all()
    return {int(v): int(n) for v, n in rows}


async def rewrap_all(ctx: VaultContext, actor: Actor, *, batch: int = 500) -> int:
    """Re-wrap every subject DEK not under the active KEK version; returns how many."""
    return await _rewrap(ctx, actor, _SUBJECT_DEKS, batch)


async def rewrap_retained(ctx: VaultContext, actor: Actor, *, batch: int = 500) -> int:
    """Re-wrap the keys of retained (Art. 17(3)) fields not under the active KEK version."""
    return await _rewrap(ctx, actor, _RETAINED_KEYS, batch)


async def versions_in_use(ctx: VaultContext) -> dict[int, int]:
    """KEK version -> number of subject DEKs it wraps."""
    return await _versions(ctx, _SUBJECT_DEKS)


async def retained_versions_in_use(ctx: VaultContext) -> dict[int, int]:
    """KEK version -> number of unshredded retained-field keys it wraps."""
    return await _versions(ctx, _RETAINED_KEYS)


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
    rewrapped += await rewrap_retained(ctx, actor)
    in_use = await versions_in_use(ctx)
    for version, count in (await retained_versions_in_use(ctx)).items():
        in_use[version] = in_use.get(version, 0) + count
    remaining = sum(n for v, n in in_use.items() if v != new_version)
    return RotationReport(new_version=new_version, rewrapped=rewrapped, remaining=remaining)


async def retire_unused(ctx: VaultContext, actor: Actor) -> list[int]:
    """Remove KEK versions that no stored DEK is wrapped under any more."""
    keyring = ctx.kek
    if not isinstance(keyring, LocalKeyring):
        raise TypeError("retiring is implemented for the local keyring provider")
    in_use = set((await versions_in_use(ctx)).keys())
    in_use |= set((await retained_versions_in_use(ctx)).keys())
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
