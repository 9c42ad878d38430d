"""A periodic job with a wake-up signal runs as soon as it is signalled instead of waiting
out its interval; without a signal it keeps its interval."""

from __future__ import annotations

import asyncio
import time

from api.background import PeriodicJob


async def test_a_signal_starts_the_next_run_at_once():
    """Interval 30 s: the first run happens at start, the second right after the signal."""
    runs: list[float] = []
    wake = asyncio.Event()

    async def run() -> None:
        runs.append(time.monotonic())

    job = PeriodicJob("test", 30.0, run, wake=wake)
    job.start()
    try:
        while not runs:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert len(runs) == 1  # waiting out the interval
        signalled = time.monotonic()
        wake.set()
        while len(runs) < 2:
            await asyncio.sleep(0.01)
        assert runs[1] - signalled < 1.0
    finally:
        await job.stop()
    assert len(runs) == 2
