"""Periodic jobs inside `tresor serve`: the audit sealer (and others), off the request path.

A failing run is logged by error type only (never a message that could quote data) and
retried at the next interval; the job never takes the server down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("tresor.background")


class PeriodicJob:
    def __init__(self, name: str, interval: float, run: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval = interval
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"tresor-{self.name}")

    async def _loop(self) -> None:
        while True:
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged and retried next interval
                log.error("background_job_failed", job=self.name, error=type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
