"""KEK rotation: add a version, re-wrap every DEK online, retire versions nothing uses.

Re-wrapping (`vault.admin.rewrap`) runs in batches, each its own short transaction guarded
by the old (version, blob) pair, so a server keeps serving throughout and a concurrent change to a
subject (erasure, another rotation) is never overwritten. Field ciphertexts do not change:
only the wrapping of each subject's DEK does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import func, select

from vault.admin.rewrap import DEFAULT_BATCH, rewrap
from vault.admin.rewrap_workers import rewrap_in_processes
from vault.admin.wrapped_keys import RECIPIENT_SECRETS, RETAINED_KEYS, SUBJECT_DEKS, WrappedKeys
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.crypto.keyring import KekProvider
from vault.crypto.pkcs11_provider import Pkcs11KekProvider
from vault.errors import InvalidInput
from vault.progress import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_version: int
    rewrapped: int
    remaining: int


@runtime_checkable
class ManagedKekProvider(KekProvider, Protocol):
    """A provider Tresor can add versions to and retire versions from (local keyring file,
    PKCS#11 token)."""

    def add_version(self) -> int: ...

    def retire_versions(self, keep: set[int]) -> list[int]: ...


def _managed(ctx: VaultContext) -> ManagedKekProvider:
    if not isinstance(ctx.kek, ManagedKekProvider):
        raise TypeError(f"{type(ctx.kek).__name__} does not support adding or retiring versions")
    return ctx.kek


@dataclass(frozen=True, slots=True)
class MigrationReport:
    token_version: int
    created: bool
    rewrapped: int
    #: subject DEKs and retained-field keys still under a version in the keyring file
    remaining_local: int


async def _versions(ctx: VaultContext, keys: WrappedKeys) -> dict[int, int]:
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


@dataclass(frozen=True, slots=True)
class RewrapOptions:
    """How a re-wrap runs: rows per batch, worker processes (PostgreSQL), the picklable
    factory that opens the KEK provider in a worker, and who watches the progress."""

    batch: int = DEFAULT_BATCH
    workers: int = 1
    open_kek: Callable[[], KekProvider] | None = None
    progress: Progress = NO_PROGRESS
    #: pause after batches slowed down by other work (`vault.admin.pacing`)
    pace: bool = False


_DEFAULT = RewrapOptions()


async def _rewrap_with(
    ctx: VaultContext, actor: Actor, keys: WrappedKeys, options: RewrapOptions
) -> int:
    in_processes = None
    if options.open_kek is not None:
        in_processes = partial(rewrap_in_processes, options.open_kek)
    return await rewrap(
        ctx,
        actor,
        keys,
        batch=options.batch,
        workers=options.workers,
        in_processes=in_processes,
        progress=options.progress,
        pace=options.pace,
    )


async def rewrap_all(
    ctx: VaultContext,
    actor: Actor,
    options: RewrapOptions = _DEFAULT,
    *,
    batch: int | None = None,
) -> int:
    """Re-wrap every subject DEK not under the active KEK version; returns how many."""
    if batch is not None:
        options = replace(options, batch=batch)
    return await _rewrap_with(ctx, actor, SUBJECT_DEKS, options)


async def rewrap_retained(
    ctx: VaultContext,
    actor: Actor,
    options: RewrapOptions = _DEFAULT,
    *,
    batch: int | None = None,
) -> int:
    """Re-wrap the keys of retained (Art. 17(3)) fields, and the recipients' signing
    secrets, not under the active KEK version."""
    if batch is not None:
        options = replace(options, batch=batch)
    retained = await _rewrap_with(ctx, actor, RETAINED_KEYS, options)
    return retained + await _rewrap_with(ctx, actor, RECIPIENT_SECRETS, options)


async def versions_in_use(ctx: VaultContext) -> dict[int, int]:
    """KEK version -> number of subject DEKs it wraps."""
    return await _versions(ctx, SUBJECT_DEKS)


async def retained_versions_in_use(ctx: VaultContext) -> dict[int, int]:
    """KEK version -> number of unshredded retained-field keys (and recipients' signing
    secrets) it wraps."""
    counts = await _versions(ctx, RETAINED_KEYS)
    for version, n in (await _versions(ctx, RECIPIENT_SECRETS)).items():
        counts[version] = counts.get(version, 0) + n
    return counts


async def rotate(
    ctx: VaultContext, actor: Actor, options: RewrapOptions = _DEFAULT
) -> RotationReport:
    """Add a KEK version, make it active, and re-wrap every DEK under it."""
    keyring = _managed(ctx)
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
    return await resume_rotation(ctx, actor, options)


async def resume_rotation(
    ctx: VaultContext, actor: Actor, options: RewrapOptions = _DEFAULT
) -> RotationReport:
    """Finish an interrupted rotation: re-wrap what is not yet under the active version,
    without adding another (each DEK's version is its marker of what is done)."""
    active = ctx.kek.active_version()
    rewrapped = await rewrap_all(ctx, actor, options)
    # Keys of fields retained after erasure (Art. 17(3)) are wrapped by the KEK too.
    rewrapped += await rewrap_retained(ctx, actor, options)
    in_use = await versions_in_use(ctx)
    for version, count in (await retained_versions_in_use(ctx)).items():
        in_use[version] = in_use.get(version, 0) + count
    remaining = sum(n for v, n in in_use.items() if v != active)
    return RotationReport(new_version=active, rewrapped=rewrapped, remaining=remaining)


async def retire_unused(ctx: VaultContext, actor: Actor) -> list[int]:
    """Remove KEK versions that no stored DEK is wrapped under any more."""
    keyring = _managed(ctx)
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


async def migrate_to_pkcs11(
    ctx: VaultContext, actor: Actor, options: RewrapOptions = _DEFAULT
) -> MigrationReport:
    """Move every DEK and retained-field key from the keyring file onto the PKCS#11 token.

    Creates the first KEK on the token (audited like a rotation) unless one is there, then
    re-wraps in the same guarded batches as a rotation. Resumable: after a crash, running it
    again continues where it stopped; every row stays readable throughout.
    """
    kek = ctx.kek
    if not isinstance(kek, Pkcs11KekProvider):
        raise InvalidInput(
            "migrating to PKCS#11 needs TRESOR_KEK_PROVIDER=pkcs11 and the token settings"
        )
    on_token = kek.token_versions()
    created = not on_token
    version = kek.add_version() if created else max(on_token)
    if created:
        async with ctx.transaction() as conn:
            await audit.record(
                conn,
                at=ctx.clock.now(),
                actor=actor,
                action=AuditAction.KEYS_ROTATE,
                decision=Decision.ALLOW,
                detail={"new_version": version, "provider": "pkcs11", "migration": True},
            )
    rewrapped = await rewrap_all(ctx, actor, options)
    rewrapped += await rewrap_retained(ctx, actor, options)
    local = set(kek.local_versions())
    remaining = sum(
        n
        for counts in (await versions_in_use(ctx), await retained_versions_in_use(ctx))
        for v, n in counts.items()
        if v in local
    )
    return MigrationReport(
        token_version=version, created=created, rewrapped=rewrapped, remaining_local=remaining
    )
