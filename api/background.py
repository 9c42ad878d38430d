"""Periodic jobs inside `tresor serve`: the audit sealer (and others), off the request path.

A failing run is logged by error type only (never a message that could quote data) and
retried at the next interval; the job never takes the server down. Stopping never cancels a
run in the middle of a database transaction (on SQLite that could leave the write lock
held): it lets the current run finish and skips the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("tresor.background")


class PeriodicJob:
    def __init__(
        self,
        name: str,
        interval: float,
        run: Callable[[], Awaitable[object]],
        close: Callable[[], Awaitable[object]] | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self._run = run
        #: Releases what the job holds open (connections) once it has stopped.
        self._close = close
        #: Set by whoever knows there is work (a commit's notification): the job runs at
        #: once instead of at the end of its interval, which stays the fallback.
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name=f"tresor-{self.name}")

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            if self._wake is not None:
                self._wake.clear()  # a signal during the run below makes the next one start
            try:
                await self._run()
            except Exception as exc:  # noqa: BLE001 - logged and retried next interval
                log.error("background_job_failed", job=self.name, error=type(exc).__name__)
            await self._pause()

    async def _pause(self) -> None:
        """Until the interval passed, the job is stopping, or it is woken."""
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if self._wake is not None:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def stop(self, timeout: float = 60.0) -> None:
        """Ask the loop to end after its current run and wait for it (cancel only as a last
        resort, after `timeout`)."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        if self._close is not None:
            await self._close()
