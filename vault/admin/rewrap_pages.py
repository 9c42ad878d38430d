"""Re-wrapping in heap-page order on PostgreSQL, one key per page per transaction, so each
page costs the write-ahead log one full-page image instead of one per key.

In primary-key order the keys of a rotation are random over the table's pages: nearly
every re-wrap is the first change of its page since the last checkpoint, so the log takes
a full-page image (8 KB) for almost every key (4-9 GB for a million, docs/operations.md §4).
Here a window of `batch` heap pages is read at once (a TID range scan) and re-wrapped in
passes: the first pass takes the first pending key of every page of the window, the second
the second, and so on, each pass one guarded transaction (`commit_batch`). A page's first
change takes the image; the later ones, moments later, do not.

One key per page per pass, not all of a page's keys in one transaction: the table's free
space (fillfactor 80, migration 0039) holds about two new row versions per page. All of a
page's keys at once left 40 % of the updates without room on their page (no longer
heap-only: an entry in every index, the table a quarter larger, the log doubled). With one
per pass a new version always finds the room its predecessor's version left, and the pass
after next finds the old versions of the pass before pruned (they are dead once that
transaction committed and no older snapshot is open).

Rows that moved meanwhile (a concurrent update that was not heap-only) or whose guard
failed are found afterwards by the caller's keyset pass over what is still pending.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.admin.wrapped_keys import Read, RewrapEnv, WrappedKeys
from vault.audit.events import Actor
from vault.pacing import LogPacer, Pacer
from vault.progress import NO_PROGRESS, Progress


@dataclass(frozen=True, slots=True)
class Steps:
    """The batch steps of `vault.admin.rewrap` the page order runs: write a batch with its
    audit event (`commit_batch`), pause after it (`pause_after_batch`), open a range's log pacer."""

    commit: Callable[
        [RewrapEnv, Actor, WrappedKeys, list[tuple[str, int, bytes]], int, LogPacer | None],
        Awaitable[int],
    ]
    pace: Callable[[Pacer | None, LogPacer | None, float, int], Awaitable[None]]
    log_pacer: Callable[[RewrapEnv, int], Awaitable[LogPacer | None]]


def _window(keys: WrappedKeys) -> Any:
    """The pending keys of heap pages `lo` (inclusive) to `hi` (exclusive), with each row's
    page, in physical order. (Names come from the table definitions in code.)"""
    table, key = keys.table.name, keys.key_column
    return text(
        f"SELECT id, kek_version, {key} AS blob, "  # noqa: S608 - identifiers from code
        "(ctid::text::point)[0]::bigint AS page "
        f"FROM {table} "
        "WHERE ctid >= CAST(CAST(:lo AS text) AS tid) AND ctid < CAST(CAST(:hi AS text) AS tid) "
        f"AND {key} IS NOT NULL AND kek_version <> :active ORDER BY ctid"
    )


async def heap_pages(conn: AsyncConnection, keys: WrappedKeys) -> int:
    """How many heap pages `keys.table` has now."""
    query = text(
        "SELECT pg_relation_size(CAST(:t AS regclass)) / current_setting('block_size')::int"
    )
    return int((await conn.execute(query, {"t": keys.table.name})).scalar_one())


def page_ranges(pages: int, ranges: int) -> list[tuple[int, int]]:
    """`ranges` consecutive ranges of page numbers, together exactly 0 .. `pages`."""
    cuts = [pages * k // ranges for k in range(ranges + 1)]
    return list(zip(cuts, cuts[1:], strict=False))


def passes(found: list[Any]) -> list[list[tuple[str, int, bytes]]]:
    """`found` (rows in physical order, each with its page) as passes: the k-th pass holds
    the k-th row of every page that has one, so no pass changes a page twice."""
    out: list[list[tuple[str, int, bytes]]] = []
    rank: dict[int, int] = {}
    for row in found:
        k = rank[row["page"]] = rank.get(row["page"], -1) + 1
        if k == len(out):
            out.append([])
        out[k].append((row["id"], row["kek_version"], bytes(row["blob"])))
    return out


async def rewrap_pages(
    env: RewrapEnv,
    read: Read,
    actor: Actor,
    keys: WrappedKeys,
    *,
    first: int,
    end: int,
    batch: int,
    steps: Steps,
    progress: Progress = NO_PROGRESS,
    pacer: Pacer | None = None,
    log: LogPacer | None = None,
) -> int:
    """Re-wrap the pending keys on heap pages `first` .. `end` (exclusive), a window of
    `batch` pages at a time (fewer while `log` says others commit), one key per page per
    transaction; how many rows changed."""
    total, start = 0, first
    query = _window(keys)
    while start < end:
        stop = min(end, start + (log.batch(batch) if log is not None else batch))
        active = env.kek.active_version()
        found = await read(query, {"lo": f"({start},0)", "hi": f"({stop},0)", "active": active})
        for olds in passes(list(found)):
            started = time.perf_counter()
            total += await steps.commit(env, actor, keys, olds, active, log)
            progress.advance(len(olds))
            await steps.pace(pacer, log, started, len(olds))
        start = stop
    return total


async def rewrap_by_pages(
    env: RewrapEnv,
    read: Read,
    actor: Actor,
    keys: WrappedKeys,
    *,
    batch: int,
    ranges: int,
    steps: Steps,
    progress: Progress = NO_PROGRESS,
    pace_ranges: bool = False,
) -> int:
    """The table's pages as it is now split into `ranges` ranges re-wrapped at once, each
    paced by itself with `pace_ranges`; how many rows changed."""
    async with env.transaction() as conn:
        pages = await heap_pages(conn, keys)

    async def one(first: int, end: int) -> int:
        pacer = Pacer() if pace_ranges else None
        log = await steps.log_pacer(env, ranges) if pacer is not None else None
        return await rewrap_pages(
            env,
            read,
            actor,
            keys,
            first=first,
            end=end,
            batch=batch,
            steps=steps,
            progress=progress,
            pacer=pacer,
            log=log,
        )

    return sum(await asyncio.gather(*(one(a, b) for a, b in page_ranges(pages, ranges))))
