"""The jobs process's event loop runner."""

from __future__ import annotations

import asyncio

from api import event_loop


def test_run_completes_the_coroutine_on_uvloop() -> None:
    """`run` returns the coroutine's result, computed on a uvloop loop (as `serve` uses)."""

    async def main() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(main()).startswith("uvloop")
