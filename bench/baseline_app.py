"""Baseline for bench/lookup.py and bench/writes.py: the least a request could cost on this
stack.

A minimal Litestar app on a raw asyncpg pool (PostgreSQL) or one aiosqlite connection
(SQLite): `POST /v1/lookup` reads one subject row by primary key and returns it (no purpose
check, no decryption, no audit); `POST /v1/subjects` and `POST /v1/subjects/{id}/consents`
each insert one row of the request's bytes into a scratch table and commit (no validation,
no encryption, no audit), the least a durable write costs.
Run: BENCH_DB_URL=... uvicorn bench.baseline_app:app
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from litestar import Litestar, Request, post
from litestar.datastructures import State

URL = os.environ.get("BENCH_DB_URL", "")


async def _open(app: Litestar) -> None:
    if URL.startswith("postgresql"):
        import asyncpg

        dsn = URL.replace("postgresql+asyncpg://", "postgresql://")
        app.state.pool = await asyncpg.create_pool(dsn, min_size=32, max_size=32)
        await app.state.pool.execute(_SCRATCH.replace("BLOB", "BYTEA"))
    else:
        import aiosqlite

        path = URL.split("///", 1)[1]
        app.state.sqlite = await aiosqlite.connect(path)
        await app.state.sqlite.execute("PRAGMA journal_mode=WAL")
        await app.state.sqlite.execute(_SCRATCH)
        await app.state.sqlite.commit()


#: The scratch table the baseline's writes go to.
_SCRATCH = "CREATE TABLE IF NOT EXISTS bench_writes (id VARCHAR(36) PRIMARY KEY, body BLOB)"


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


async def _insert(state: State, body: bytes) -> str:
    row_id = str(uuid.uuid4())
    if getattr(state, "pool", None) is not None:
        await state.pool.execute("INSERT INTO bench_writes VALUES ($1, $2)", row_id, body)
    else:
        await state.sqlite.execute("INSERT INTO bench_writes VALUES (?, ?)", (row_id, body))
        await state.sqlite.commit()
    return row_id


@post("/v1/subjects", status_code=201)
async def create(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    return {"subject_id": await _insert(state, await request.body())}


@post("/v1/subjects/{subject_id:str}/consents", status_code=201)
async def consent(subject_id: str, request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    return {"consent_id": await _insert(state, await request.body())}


app = Litestar(route_handlers=[lookup, create, consent], on_startup=[_open], on_shutdown=[_close])
