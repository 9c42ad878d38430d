"""What the machine can do at most for key rotation and audit verification, in this run.

On a shared, loaded machine a rate alone says little: `bench/scale.py` prints these next
to `keys rotate` and `audit verify`, measured in the same run on the same data, so each
figure can be read as a share of its ceiling:

- `hmac_per_core`: HMAC-SHA256 of an event-sized message per second in one process (the
  verification's cryptography alone, through the chain's reused keyed state).
- `verify_walk_per_core`: events per second the verification's inner loop checks in one
  process, on rows already fetched (encoding, MAC, comparison: no database).
- `pg_read_events_per_s`: events (with their seals) PostgreSQL hands one client per
  second in the verification's keyset pages, nothing checked.
- `rewrap_crypto_per_core`: DEKs unwrapped and wrapped again per second in one process
  under the keyring file's KEKs (no database).
- `pg_update_rows_per_s`: rows per second PostgreSQL updates when every subject's KEK
  version and wrapped DEK are rewritten in one statement (every index entry written again,
  as a rotation's updates are).

Usage: imported by bench/scale.py (`ceilings(settings, url)`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import asyncpg

from vault.audit import verify as audit_verify
from vault.audit.chain import GENESIS, _chain_key
from vault.context import VaultContext
from vault.crypto import DekManager, LocalKeyring
from vault.settings import Settings
from vault.storage.pg_direct import asyncpg_dsn

#: Events fetched for the in-memory walk (memory: a few hundred bytes each).
WALK_EVENTS = 200_000
DEKS = 50_000


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def hmac_per_core(ctx: VaultContext, n: int = 500_000) -> float:
    digest = _chain_key(ctx).hexdigester()
    message = (GENESIS + "|1234567|").encode() + b"x" * 230  # an event's canonical size
    t0 = time.perf_counter()
    for _ in range(n):
        digest(message)
    return _rate(n, time.perf_counter() - t0)


def rewrap_crypto_per_core(ctx: VaultContext, n: int = DEKS) -> float:
    """The local keyring's batch re-wrap on fresh DEKs wrapped under the active version."""
    keyring = ctx.kek
    if not isinstance(keyring, LocalKeyring):
        return 0.0
    deks = DekManager(keyring, 0)
    items = []
    for i in range(n):
        sid = f"{i:08d}-0000-4000-8000-000000000000"
        version, blob = keyring.wrap(sid, os.urandom(32))
        items.append((sid, version, blob))
    t0 = time.perf_counter()
    for lo in range(0, n, 5000):
        deks.rewrap_many(items[lo : lo + 5000])
    return _rate(n, time.perf_counter() - t0)


async def _pages(conn: asyncpg.Connection, limit: int | None) -> tuple[list[Any], int, float]:
    """The verification's keyset pages from the start: (the first `limit` rows kept, rows
    read, seconds)."""
    page = audit_verify._PAGE_PG
    kept: list[Any] = []
    read, after = 0, 0
    top = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_seals"))
    t0 = time.perf_counter()
    while True:
        rows = await conn.fetch(
            page.sql, *page.args({"after": after, "hi": top, "page": audit_verify.PAGE})
        )
        if not rows:
            return kept, read, time.perf_counter() - t0
        read += len(rows)
        if limit is not None and len(kept) < limit:
            kept.extend(rows[: limit - len(kept)])
        after = rows[-1][0]


async def ceilings(settings: Settings, url: str) -> dict[str, Any]:
    ctx = VaultContext.open(settings)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        out: dict[str, Any] = {"hmac_per_core": hmac_per_core(ctx)}
        rows, read, seconds = await _pages(conn, WALK_EVENTS)
        out["pg_read_events_per_s"] = _rate(read, seconds)
        job = audit_verify._Range(url, _chain_key(ctx), 0, read, None, audit_verify.PAGE)
        walk = audit_verify._Walk(job, None, audit_verify._canonical_utc)
        t0 = time.perf_counter()
        broken = walk.check(rows)
        out["verify_walk_per_core"] = _rate(len(rows), time.perf_counter() - t0)
        if broken is not None:
            raise RuntimeError(f"the seeded chain does not verify: {broken}")
        out["rewrap_crypto_per_core"] = rewrap_crypto_per_core(ctx)
        # A changed `kek_version` (indexed) as in a rotation, so no update is HOT; the
        # second statement puts every version back.
        t0 = time.perf_counter()
        updated = 0
        for shift in ("+ 1000", "- 1000"):
            status = await conn.execute(
                f"UPDATE subjects SET kek_version = kek_version {shift}, "  # noqa: S608 - constants
                "wrapped_dek = wrapped_dek"
            )
            updated += int(status.rsplit(" ", 1)[-1])
        out["pg_update_rows_per_s"] = _rate(updated, time.perf_counter() - t0)
        await conn.execute("VACUUM subjects")
        return out
    finally:
        await conn.close()
        await ctx.close()
