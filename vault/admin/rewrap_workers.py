"""A rotation's ranges in worker processes, for KEK providers that work in the calling
thread (a PKCS#11 token: its unwrap and wrap are the cost there, not the database's).

Each process opens its own engine and KEK provider (the picklable `open_kek` the caller
hands over) and re-wraps one range of `vault.admin.rewrap.split_points` with the same
guarded batches as `rewrap_range`; progress comes back as counts through a queue.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.admin.rewrap import rewrap_range, split_points
from vault.admin.wrapped_keys import KINDS
from vault.audit.events import Actor
from vault.clock import Clock
from vault.crypto.envelope import DekManager
from vault.crypto.keyring import KekProvider
from vault.errors import Unavailable
from vault.pacing import Pacer
from vault.progress import Progress
from vault.storage.db import make_engine
from vault.storage.dialect import asyncpg_connection
from vault.storage.pg_direct import Compiled


async def rewrap_in_processes(
    open_kek: Callable[[], KekProvider],
    url: str,
    clock: Clock,
    actor: Actor,
    kind: str,
    workers: int,
    batch: int,
    progress: Progress,
    pace: bool = False,
) -> int:
    """The ranges of `split_points(workers)` in as many processes; how many were changed."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager:
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            loop = asyncio.get_running_loop()
            jobs = [
                _Job(url, open_kek, clock, actor, kind, lo, hi, batch, pace, workers)
                for lo, hi in split_points(workers)
            ]
            futures = [loop.run_in_executor(pool, _worker, job, queue) for job in jobs]
            done_all = asyncio.gather(*futures)
            while not done_all.done():
                await asyncio.wait([done_all], timeout=0.2)
                _drain(queue, progress)
            _drain(queue, progress)
            return sum(await done_all)


def _drain(queue: Any, progress: Progress) -> None:
    while not queue.empty():
        progress.advance(int(queue.get_nowait()))


@dataclass(frozen=True, slots=True)
class _Job:
    url: str
    open_kek: Callable[[], KekProvider]
    clock: Clock
    actor: Actor
    kind: str
    lo: str
    hi: str | None
    batch: int
    pace: bool = False
    ranges: int = 1


class _QueueProgress:
    """A worker's progress, sent to the parent as counts through a queue."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def begin(self, task: str, total: int | None) -> None:
        return None

    def advance(self, done: int) -> None:
        self._queue.put(done)


@dataclass
class _WorkerEnv:
    engine: AsyncEngine
    deks: DekManager
    kek: KekProvider
    clock: Clock
    #: Statements compiled for the driver, by identity (the entry keeps the statement alive).
    _compiled: dict[int, tuple[Any, Compiled]] = field(default_factory=dict)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise Unavailable("storage is unavailable; nothing was changed or revealed") from exc

    async def read(self, query: Any, params: dict[str, Any]) -> Sequence[Any]:
        """A page of keys: on PostgreSQL straight from the driver, as records that index
        by name (SQLAlchemy's row processing cost more than the page's unwrapping)."""
        async with self.engine.connect() as conn:
            driver = await asyncpg_connection(conn)
            if driver is None:
                return list((await conn.execute(query, params)).mappings())
            compiled = self._compiled.get(id(query))
            if compiled is None or compiled[0] is not query:
                compiled = self._compiled[id(query)] = (query, Compiled(query))
            return list(await driver.fetch(compiled[1].sql, *compiled[1].args(params)))


def _worker(job: _Job, queue: Any) -> int:
    """One process's share: its own engine and KEK provider, one range of ids."""

    async def main() -> int:
        kek = job.open_kek()
        env = _WorkerEnv(make_engine(job.url, pool_size=2), DekManager(kek, 0), kek, job.clock)
        try:
            return await rewrap_range(
                env,
                env.read,
                job.actor,
                KINDS[job.kind],
                lo=job.lo,
                hi=job.hi,
                batch=job.batch,
                progress=_QueueProgress(queue),
                pacer=Pacer() if job.pace else None,
                ranges=job.ranges,
            )
        finally:
            await env.engine.dispose()
            close = getattr(kek, "close", None)
            if close is not None:
                close()

    return asyncio.run(main())
