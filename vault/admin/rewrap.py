"""Re-wrapping every DEK under the active KEK at hardware speed, online and resumable.

One row at a time cost a statement round trip per DEK (3,069 DEKs/s at 100,000 subjects).
Here a batch of rows is read by keyset page on the primary key outside any write
transaction, re-wrapped in memory, and written back in one statement (`UPDATE ... FROM
unnest(...)` on PostgreSQL, one executemany on SQLite) in a short transaction of its own
together with its audit event (fail closed: no event, no change). Each row's update is
guarded by its old (version, blob) pair, so a concurrent erasure or rotation is never
overwritten, and lookups (plain reads) are never blocked by more than one batch's row locks.

Resumable: a row's `kek_version` is its marker. After a crash or Ctrl-C a re-run selects
only the rows still under another version; no DEK is lost because a blob is replaced only
in the same statement that records its new version.

Order: on PostgreSQL the keys are taken in heap-page order (`vault.admin.rewrap_pages`),
so a page costs the write-ahead log one full-page image rather than one per key; the
keyset batches here then re-wrap whatever moved meanwhile. SQLite, and worker processes
for a PKCS#11 token, take the keys by primary key alone.

Parallel: on PostgreSQL the pages (or, in worker processes with a PKCS#11 token, the key
space) are split into `workers` ranges re-wrapped at once (see `rewrap`): as concurrent
tasks of this process with the keyring file, whose crypto is a tenth of the database's
cost per key, or in worker processes with a token. SQLite has one writer, so it always
runs one range in this process.

Why `UPDATE ... FROM unnest(...)` and not COPY into a temporary table and one `UPDATE ...
FROM` it: measured side by side on the same 100,000 subjects (docs/operations.md), the
temporary table cost the server 45 us of CPU per row against 38 us, and two connections
gained 1.25x with it against 1.8x with `unnest`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.admin.rewrap_pages import Steps, rewrap_by_pages
from vault.admin.wrapped_keys import (
    Read,
    RewrapEnv,
    WrappedKeys,
)
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import Clock
from vault.pacing import LogPacer, Pacer, ServerReading, log_budget
from vault.progress import NO_PROGRESS, Progress
from vault.storage.dialect import (
    plan_for_transaction,
    serialises_writers,
    takes_array_parameters,
)

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Rows per batch: large enough that a statement's round trip and the batch's audit event
#: are a small share of its cost, small enough that one transaction holds its row locks
#: for tens of milliseconds (lookups only read, so they never wait on them).
DEFAULT_BATCH = 5000
#: How a paced range waits (replaced in tests).
_pause = asyncio.sleep
#: Below this many rows to re-wrap, starting processes costs more than it saves.
PARALLEL_THRESHOLD = 20_000


#: Runs the ranges of one kind in worker processes: (url, clock, actor, kind, workers,
#: batch, progress, pace) -> rows changed (`vault.admin.rewrap_workers.rewrap_in_processes`
#: with its KEK opener bound).
InProcesses = Callable[[str, Clock, Actor, str, int, int, Progress, bool], Awaitable[int]]


def _pending(keys: WrappedKeys, hi: str | None) -> Any:
    table, key = keys.table, keys.table.c[keys.key_column]
    query = (
        select(table.c.id, table.c.kek_version, key.label("blob"))
        .where(key.is_not(None))
        .where(table.c.kek_version != bindparam("active"))
        .where(table.c.id > bindparam("after"))
        .order_by(table.c.id)
        .limit(bindparam("batch"))
    )
    return query.where(table.c.id < bindparam("hi")) if hi is not None else query


#: One guarded UPDATE for a whole batch, its rows passed as four arrays (per table).
def _pg_update(keys: WrappedKeys) -> str:
    """One guarded batch `UPDATE … FROM unnest(…)` for a table of wrapped keys: a row is
    written only if it still holds the version and blob that were read. The new version is
    one parameter (a batch is wrapped under one version), not an array of copies of it.
    (Names come from the table definitions in code, never from input.)"""
    table, key = keys.table.name, keys.key_column
    return (
        f"UPDATE {table} AS t SET kek_version = $4::int, {key} = v.new_blob "  # noqa: S608 - identifiers from code
        "FROM unnest($1::varchar[], $2::int[], $3::bytea[], $5::bytea[]) "
        "AS v(id, old_version, old_blob, new_blob) "
        f"WHERE t.id = v.id AND t.kek_version = v.old_version AND t.{key} = v.old_blob"
    )


#: For the batch's own transaction only: find each row through the primary key. Left to
#: itself the planner hashed the whole table once per batch at 100,000 subjects
#: (a sequential scan of every subject for 5,000 of them: O(table) per batch); the index
#: probes cost it 52-74 us of CPU per row there against 72-82 (EXPLAIN ANALYZE, load 12).
_PROBE_BY_KEY = {"enable_hashjoin": "off", "enable_mergejoin": "off"}


async def _write(
    conn: AsyncConnection,
    keys: WrappedKeys,
    olds: list[tuple[str, int, bytes]],
    fresh: Sequence[tuple[int, bytes]],
) -> int:
    """Write one batch: each (id, old version, old blob) of `olds` gets the (new version,
    new blob) at the same place in `fresh`; how many rows it changed (a row changed
    meanwhile by someone else is left alone)."""
    if takes_array_parameters(conn):
        # Through SQLAlchemy, not the driver connection: the adapter opens the transaction
        # on its first statement, and a statement sent past it would autocommit.
        await plan_for_transaction(conn, **_PROBE_BY_KEY)
        done = 0
        for version in sorted({v for v, _ in fresh}):
            picked = [
                (old, blob) for old, (v, blob) in zip(olds, fresh, strict=True) if v == version
            ]
            columns = (
                [o[0] for o, _ in picked],
                [o[1] for o, _ in picked],
                [o[2] for o, _ in picked],
                version,
                [b for _, b in picked],
            )
            result = await conn.exec_driver_sql(_pg_update(keys), columns)
            done += int(result.rowcount)
        return done
    table, key = keys.table, keys.table.c[keys.key_column]
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .where(table.c.kek_version == bindparam("b_old_version"))
        .where(key == bindparam("b_old_blob"))
        .values({"kek_version": bindparam("b_version"), keys.key_column: bindparam("b_blob")})
    )
    params = [
        {"b_id": i, "b_old_version": ov, "b_old_blob": ob, "b_version": nv, "b_blob": nb}
        for (i, ov, ob), (nv, nb) in zip(olds, fresh, strict=True)
    ]
    result = await conn.execute(statement, params)
    return int(result.rowcount)


#: The settings that say how fast the server may write its log without a requested
#: checkpoint (`vault.pacing.log_budget`): `max_wal_size` in MB, the timeout in seconds.
_LOG_SETTINGS = text(
    "SELECT (SELECT setting::float8 FROM pg_settings WHERE name = 'max_wal_size') AS mb, "
    "(SELECT setting::float8 FROM pg_settings WHERE name = 'checkpoint_timeout') AS timeout, "
    "(SELECT setting::float8 FROM pg_settings "
    "WHERE name = 'checkpoint_completion_target') AS target"
)
#: The server's log insert position and the commits in this database so far: one cheap
#: round trip at the end of a paced batch's transaction.
_READING = text(
    "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS wal, "
    "(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits"
)


async def _read_server(conn: AsyncConnection) -> ServerReading:
    row = (await conn.execute(_READING)).one()
    return ServerReading(time.perf_counter(), int(row.wal), int(row.commits or 0))


async def log_pacer(env: RewrapEnv, ranges: int) -> LogPacer | None:
    """The log-budget pacer of one range on PostgreSQL, started with a first reading;
    None on SQLite (one writer, no shared log to keep lookups waiting behind)."""
    async with env.transaction() as conn:
        if not takes_array_parameters(conn):
            return None
        row = (await conn.execute(_LOG_SETTINGS)).one()
        pacer = LogPacer(log_budget(row.mb * 1024 * 1024, row.timeout, row.target), ranges)
        pacer.start(await _read_server(conn))
    return pacer


async def rewrap_range(
    env: RewrapEnv,
    read: Read,
    actor: Actor,
    keys: WrappedKeys,
    *,
    lo: str = "",
    hi: str | None = None,
    batch: int = DEFAULT_BATCH,
    progress: Progress = NO_PROGRESS,
    pacer: Pacer | None = None,
    ranges: int = 1,
) -> int:
    """Re-wrap the keys of `keys.table` with `lo < id < hi` not under the active version,
    batch by batch; returns how many rows were changed. With a `pacer`, each batch that
    ran slower than the best one is followed by a pause (`vault.pacing`): the
    lookups competing for the machine get it back. On PostgreSQL the pacer also keeps the
    server's log within its budget while others commit (`vault.pacing.LogPacer`; `ranges`
    is how many ranges run at once), with small batches then."""
    query, total, after = _pending(keys, hi), 0, lo
    log = await log_pacer(env, ranges) if pacer is not None and pacer.enabled else None
    while True:
        started = time.perf_counter()
        active = env.kek.active_version()
        size = log.batch(batch) if log is not None else batch
        params: dict[str, Any] = {"active": active, "after": after, "batch": size}
        if hi is not None:
            params["hi"] = hi
        found = await read(query, params)
        if not found:
            return total
        olds = [(row["id"], row["kek_version"], bytes(row["blob"])) for row in found]
        total += await commit_batch(env, actor, keys, olds, active, log)
        progress.advance(len(olds))
        after = found[-1]["id"]
        await pause_after_batch(pacer, log, started, len(olds))


async def commit_batch(
    env: RewrapEnv,
    actor: Actor,
    keys: WrappedKeys,
    olds: list[tuple[str, int, bytes]],
    active: int,
    log: LogPacer | None,
) -> int:
    """Re-wrap `olds` (id, version, blob) under `active` and write them back guarded, with
    their audit event, in one transaction; how many rows changed. With `log`, the
    server's reading at its end is handed to it (`log.last`) for `pause_after_batch`."""
    # One provider call per batch: the keyring file is checked once, a token's session
    # held once, instead of once per DEK.
    fresh = env.deks.rewrap_many(keys.wrap_ids(olds))
    async with env.transaction() as conn:
        done = await _write(conn, keys, olds, fresh)
        await audit.record(
            conn,
            at=env.clock.now(),
            actor=actor,
            action=AuditAction.KEYS_REWRAP,
            decision=Decision.ALLOW,
            detail={"count": done, "to_version": active, **keys.audit_detail},
        )
        if log is not None:
            log.last = await _read_server(conn)
    return done


async def pause_after_batch(
    pacer: Pacer | None, log: LogPacer | None, started: float, rows: int
) -> None:
    """The pause after a batch of `rows` begun at `started` (`time.perf_counter`): the
    longer of the batch-time rule's and the log budget's."""
    if pacer is None:
        return
    pause = pacer.pause_for(time.perf_counter() - started, rows)
    if log is not None and log.last is not None:
        pause = max(pause, log.pause_after(log.last))
        log.last = None
    if pause:
        await _pause(pause)


async def count_pending(ctx: VaultContext, keys: WrappedKeys) -> int:
    """How many keys of `keys.table` are not under the active version (the work to do)."""
    table, key = keys.table, keys.table.c[keys.key_column]
    query = (
        select(func.count().label("n"))
        .select_from(table)
        .where(key.is_not(None))
        .where(table.c.kek_version != bindparam("active"))
    )
    rows = await ctx.read_rows(query, {"active": ctx.kek.active_version()})
    return int(rows[0]["n"])


def split_points(workers: int) -> list[tuple[str, str | None]]:
    """`workers` ranges of the id space of random UUIDs, by their first two hex digits;
    the first starts at the empty string and the last is open, so every id is covered."""
    cuts = [f"{256 * k // workers:02x}" for k in range(1, workers)]
    starts = ["", *cuts]
    ends: list[str | None] = [*cuts, None]
    return list(zip(starts, ends, strict=True))


async def rewrap(
    ctx: VaultContext,
    actor: Actor,
    keys: WrappedKeys,
    *,
    batch: int = DEFAULT_BATCH,
    workers: int = 1,
    in_processes: InProcesses | None = None,
    progress: Progress = NO_PROGRESS,
    pace: bool = False,
) -> int:
    """Re-wrap every key of `keys.table` not under the active KEK version; how many.

    On PostgreSQL (keyring file, or a token without `in_processes`) the table's pages are
    re-wrapped in page order (`vault.admin.rewrap_pages`), in `workers` ranges of pages
    at once when there is enough work, and then by key whatever is still pending. With
    worker processes for a token the ranges of `split_points` run at once. The database's
    side of a batch (a new row version per key, in its own page when there is room since
    migration 0039, else with an entry in every index) costs more than the keyring's
    unwrap and wrap, so for the keyring file the ranges run as concurrent tasks of this
    process, each on its own connection: the server's backends use every core and no
    process has to start. A PKCS#11 token does
    its crypto in the calling thread, so there each range gets a process of its own
    through `in_processes` (`vault.admin.rewrap_workers`), when the caller gives it.
    With `pace`, every range paces itself after its batches (`vault.pacing`).
    """
    pending = await count_pending(ctx, keys)
    progress.begin(f"re-wrap {keys.name}", pending)
    parallel = workers > 1 and not serialises_writers(ctx.engine) and pending >= PARALLEL_THRESHOLD
    if not serialises_writers(ctx.engine) and not (ctx.deks.blocking and in_processes is not None):
        done = await rewrap_by_pages(
            ctx,
            ctx.read_rows,
            actor,
            keys,
            batch=batch,
            ranges=workers if parallel else 1,
            steps=Steps(commit_batch, pause_after_batch, log_pacer),
            progress=progress,
            pace_ranges=pace,
        )
        if not await count_pending(ctx, keys):
            return done
        # What moved meanwhile, by key, as before the page order.
        pacer = Pacer() if pace else None
        return done + await rewrap_range(
            ctx, ctx.read_rows, actor, keys, batch=batch, progress=progress, pacer=pacer
        )
    if not parallel:
        pacer = Pacer() if pace else None
        return await rewrap_range(
            ctx, ctx.read_rows, actor, keys, batch=batch, progress=progress, pacer=pacer
        )
    if ctx.deks.blocking and in_processes is not None:
        url = ctx.engine.url.render_as_string(hide_password=False)
        return await in_processes(url, ctx.clock, actor, keys.name, workers, batch, progress, pace)
    counts = await asyncio.gather(
        *(
            rewrap_range(
                ctx,
                ctx.read_rows,
                actor,
                keys,
                lo=lo,
                hi=hi,
                batch=batch,
                progress=progress,
                pacer=Pacer() if pace else None,
                ranges=workers,
            )
            for lo, hi in split_points(workers)
        )
    )
    return sum(counts)
