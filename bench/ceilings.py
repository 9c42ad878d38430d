"""What the machine can do at most for key rotation and audit verification, in this run.

On a shared, loaded machine a rate alone says little: `bench/scale.py` prints these next
to `keys rotate` and `audit verify`, measured in the same run on the same data, so each
figure can be read as a share of its ceiling:

- `hmac_per_core`: HMAC-SHA256 of an event-sized message per second in one process (the
  verification's cryptography alone, through the chain's reused keyed state).
- `verify_walk_per_core`: events per second the verification's fast walk checks in one
  process, on COPY's CSV lines already received (split, format, MAC, comparison per block:
  no database); `verify_walk_accepted` the share of the sample it accepted (1.0 but for
  lines only the exact check takes, such as a raw control character).
- `pg_read_events_per_s`: events (with their seals) PostgreSQL streams to one client per
  second by the verification's COPY chunks, nothing checked; `pg_read_events_per_s_2conn`
  the same over two connections at once (two halves), the fair ceiling of two workers.
- `rewrap_crypto_per_core`: DEKs unwrapped and wrapped again per second in one process
  under the keyring file's KEKs (no database).
- `pg_update_rows_per_s`: rows per second PostgreSQL updates when every subject's KEK
  version and wrapped DEK are rewritten in one statement (every index entry written again,
  as a rotation's updates are).
- `pg_unnest_update_rows_per_s` (`_2conn`): the rotation's own write, guarded batches of
  `UPDATE ... FROM unnest(...)` with no crypto, on one connection and on two at once.

Usage: imported by bench/scale.py (`ceilings(settings, url)`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import asyncpg

from vault.audit.chain_links import GENESIS
from vault.audit.verify_csv import CsvWalk
from vault.audit.verify_sql import statements
from vault.audit.verify_state import CHUNK, ChainState
from vault.audit.verify_stream import SESSION
from vault.context import VaultContext
from vault.crypto import DekManager, LocalKeyring
from vault.crypto.mac import keyed_state
from vault.settings import Settings
from vault.storage.pg_direct import asyncpg_dsn

#: Events fetched for the in-memory walk (memory: a few hundred bytes each).
WALK_EVENTS = 200_000
DEKS = 50_000


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def hmac_per_core(ctx: VaultContext, n: int = 500_000) -> float:
    """The verification's MAC per event: a copy of the keyed state, one update, the hex."""
    copy = keyed_state(ctx.secrets.audit_key).copy
    message = (GENESIS + "|1234567|").encode() + b"x" * 230  # an event's canonical size
    t0 = time.perf_counter()
    for _ in range(n):
        state = copy()
        state.update(message)
        state.hexdigest()
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


async def _stream(url: str, lo: int, hi: int, keep: list[bytes] | None) -> int:
    """The verification's COPY chunks of `(lo, hi]`, nothing checked: lines read (the first
    chunks kept in `keep`, up to `WALK_EVENTS` lines)."""
    sql = statements(CHUNK)
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings=SESSION)
    lines = 0

    async def sink(chunk: bytes) -> None:
        nonlocal lines
        lines += chunk.count(b"\n")
        if keep is not None and lines <= WALK_EVENTS:
            keep.append(bytes(chunk))

    try:
        for a in range(lo, hi, CHUNK):
            query = sql.copy.format(lo=a, hi=min(hi, a + CHUNK))
            await conn.copy_from_query(query, output=sink, **sql.csv_options())
        return lines
    finally:
        await conn.close()


async def _read_ceilings(url: str, top: int, first: Any, out: dict[str, Any]) -> list[bytes]:
    """Read rates over `(first seal, top]`; the first `WALK_EVENTS` lines kept for the walk."""
    lo = int(first[2]) if first is not None else 0
    kept: list[bytes] = []
    t0 = time.perf_counter()
    read = await _stream(url, lo, top, kept)
    out["pg_read_events_per_s"] = _rate(read, time.perf_counter() - t0)
    mid = (lo + top) // 2
    t0 = time.perf_counter()
    halves = await asyncio.gather(_stream(url, lo, mid, None), _stream(url, mid, top, None))
    out["pg_read_events_per_s_2conn"] = _rate(sum(halves), time.perf_counter() - t0)
    return kept


def _walk_rate(key: bytes, first: Any, chunks: list[bytes], out: dict[str, Any]) -> None:
    """The fast walk over the kept lines, from the first seal (where the chain starts,
    also after pruning). It used to start at position 1 and count every line it could not
    rebuild as a failure: the lookups `bench/scale.py` measures before seeding write real
    events whose JSON detail has quotes, which the text walk handed to the exact check, so
    a sample with more than a hundredth of them failed the whole bench (`does not verify:
    None`). The CSV walk takes quotes; a line it still cannot take ends the sample, and the
    share it accepted is reported (`verify_walk_accepted`) instead of failing the bench."""
    state = ChainState.at(first, None)
    walk = CsvWalk(key, state)
    t0 = time.perf_counter()
    for chunk in chunks:
        walk.check(chunk)
    seconds = time.perf_counter() - t0
    lines = sum(chunk.count(b"\n") for chunk in chunks)
    out["verify_walk_per_core"] = _rate(state.verified, seconds)
    out["verify_walk_accepted"] = round(state.verified / lines, 4) if lines else 0.0


#: The rotation's own write (`vault.admin.rewrap`): one new version for the batch, and
#: each row found through the primary key (the planner told so for the transaction).
_UNNEST = (
    "UPDATE subjects AS t SET kek_version = $4::int, wrapped_dek = v.new_blob "
    "FROM unnest($1::varchar[], $2::int[], $3::bytea[], $5::bytea[]) "
    "AS v(id, old_version, old_blob, new_blob) "
    "WHERE t.id = v.id AND t.kek_version = v.old_version AND t.wrapped_dek = v.old_blob"
)
_PROBE_BY_KEY = (
    "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
)


async def _unnest_batches(url: str, rows: list[Any], shift: int) -> int:
    """`rows` (id, version, blob) moved by `shift` versions in the rotation's guarded
    batches, one transaction each; rows changed."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    changed = 0
    try:
        for lo in range(0, len(rows), 5000):
            part = rows[lo : lo + 5000]
            # One version per batch, as the rotation writes (every row of `rows` is under
            # one version when the ceilings run: after a rotation).
            columns = [
                [r[0] for r in part],
                [r[1] for r in part],
                [r[2] for r in part],
                part[0][1] + shift,
                [r[2] for r in part],
            ]
            async with conn.transaction():
                await conn.execute(_PROBE_BY_KEY)
                status = await conn.execute(_UNNEST, *columns)
            changed += int(status.rsplit(" ", 1)[-1])
        return changed
    finally:
        await conn.close()


async def _update_ceilings(url: str, conn: asyncpg.Connection, out: dict[str, Any]) -> None:
    """The rotation's write on the first `DEKS` subjects that have a key (an erased one's
    is shredded, NULL, and a rotation skips it): +1000 versions on one connection, then
    back on two at once (each half its own)."""
    found = await conn.fetch(
        "SELECT id, kek_version, wrapped_dek FROM subjects WHERE wrapped_dek IS NOT NULL "
        "ORDER BY id LIMIT $1",
        DEKS,
    )
    rows = [(r[0], r[1], bytes(r[2])) for r in found]
    t0 = time.perf_counter()
    one = await _unnest_batches(url, rows, 1000)
    out["pg_unnest_update_rows_per_s"] = _rate(one, time.perf_counter() - t0)
    moved = [(i, v + 1000, b) for i, v, b in rows]
    half = len(moved) // 2
    t0 = time.perf_counter()
    two = await asyncio.gather(
        _unnest_batches(url, moved[:half], -1000), _unnest_batches(url, moved[half:], -1000)
    )
    out["pg_unnest_update_rows_per_s_2conn"] = _rate(sum(two), time.perf_counter() - t0)


async def ceilings(settings: Settings, url: str) -> dict[str, Any]:
    ctx = VaultContext.open(settings)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        out: dict[str, Any] = {"hmac_per_core": hmac_per_core(ctx)}
        top = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_seals"))
        first = await conn.fetchrow(
            "SELECT chain_pos, chain_mac, seq FROM audit_seals ORDER BY seq LIMIT 1"
        )
        chunks = await _read_ceilings(url, top, first, out)
        _walk_rate(ctx.secrets.audit_key, first, chunks, out)
        out["rewrap_crypto_per_core"] = rewrap_crypto_per_core(ctx)
        await _update_ceilings(url, conn, out)
        # A changed `kek_version` as in a rotation (no longer indexed since migration 0039,
        # so an update is HOT where its page has room); the second puts every version back.
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
