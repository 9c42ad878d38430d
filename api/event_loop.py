"""The event loop of Tresor's own long-running processes besides `serve`.

`tresor serve` runs on uvloop (uvicorn picks it when installed, as `uvicorn[standard]`
installs it on Linux and macOS). The jobs process, which sends recipient notices and mail,
spends about a quarter of its busy time in socket reads and writes; asyncio's default loop
does those in Python, uvloop in C. So it runs on uvloop too where it is installed, and on
asyncio's loop elsewhere (Windows), where everything works the same, only slower.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new event loop (uvloop's where installed)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever the tests run
        return asyncio.run(main)
    return uvloop.run(main)
