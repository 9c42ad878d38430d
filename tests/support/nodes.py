"""Several app instances ("nodes") on one database and keyring, in-process, for tests of
what must hold on every node at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from api.app import create_app
from vault.context import VaultContext


@asynccontextmanager
async def node(ctx: VaultContext) -> AsyncIterator[httpx.AsyncClient]:
    """One app instance (a node) on `ctx`; several share the database and the keyring."""
    app = create_app(vault=ctx, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
        ) as http:
            yield http
    finally:
        for hook in app.on_shutdown:
            await hook(app)


@asynccontextmanager
async def second_node(vault: VaultContext) -> AsyncIterator[httpx.AsyncClient]:
    """Another node: its own context (engine, caches) on the same database and keyring."""
    other = VaultContext.open(vault.settings, clock=vault.clock)
    try:
        async with node(other) as http:
            yield http
    finally:
        await other.close()
