"""Baseline for bench/lookup.py: the least a lookup could cost on this stack.

A minimal Litestar app that reads one subject row by primary key (raw asyncpg pool on
PostgreSQL, aiosqlite on SQLite) and returns it: no purpose check, no decryption, no audit.
Run: BENCH_DB_URL=... uvicorn bench.baseline_app:app
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, post
from litestar.datastructures import State

URL = os.environ.get("BENCH_DB_URL", "")


async def _open(app: Litestar) -> None:
    if URL.startswith("postgresql"):
        import asyncpg

        dsn = URL.replace("postgresql+asyncpg://", "postgresql://")
        app.state.pool = await asyncpg.create_pool(dsn, min_size=32, max_size=32)
    else:
        import aiosqlite

        path = URL.split("///", 1)[1]
        app.state.sqlite = await aiosqlite.connect(path)


async def _close(app: Litestar) -> None:
    if getattr(app.state, "pool", None) is not None:
        await app.state.pool.close()
    if getattr(app.state, "sqlite", None) is not None:
        await app.state.sqlite.close()


@post("/v1/lookup", status_code=200)
async def lookup(data: dict[str, Any], state: State) -> dict[str, Any]:
    subject_id = data["subject_id"]
    if getattr(state, "pool", None) is not None:
        row = await state.pool.fetchrow(
            "SELECT id, status, name_ct, postal_address_ct FROM subjects WHERE id = $1",
            subject_id,
        )
        found = row is not None
    else:
        cur = await state.sqlite.execute(
            "SELECT id, status, name_ct, postal_address_ct FROM subjects WHERE id = ?",
            (subject_id,),
        )
        found = await cur.fetchone() is not None
    return {"subject_id": subject_id, "found": found}


app = Litestar(route_handlers=[lookup], on_startup=[_open], on_shutdown=[_close])
