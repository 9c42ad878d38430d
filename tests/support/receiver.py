"""A receiver app (examples/receiver) served by uvicorn on a free loopback port inside the
test's own event loop, with fault injection: a share of requests answered 503, or the
whole receiver down (connection refused)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from tests.support.server import free_port


@dataclass
class Faults:
    """`fail_rate`: share of requests answered 503 before the app sees them."""

    fail_rate: float = 0.0
    seed: int = 7
    requests: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def wrap(self, app: Any) -> Any:
        async def faulty(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.requests += 1
                if self._random.random() < self.fail_rate:
                    self.failed += 1
                    await send({"type": "http.response.start", "status": 503, "headers": []})
                    await send({"type": "http.response.body", "body": b""})
                    return
            await app(scope, receive, send)

        return faulty


@asynccontextmanager
async def serving(
    app: Any, port: int | None = None, *, tls: tuple[str, str] | None = None
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields its base URL. With `tls`
    (certificate chain file, key file) it serves HTTPS."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
