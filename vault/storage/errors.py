"""The one mapping of storage failures to `Unavailable`.

A lost, refused or failing database looks different through SQLAlchemy and through the raw
asyncpg pool; every adapter (`vault.storage.ports`, `vault.storage.pg_direct`) and the
transactions of `VaultContext` turn all of them into the same `Unavailable`, so callers fail
closed the same way whichever path served them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from vault.errors import Unavailable

#: Everything that means "storage did not answer or refused": the drivers (plain `sqlite3`
#: included: `vault.storage.sqlite_direct`), the socket, the
#: driver's timeouts.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
    OSError,
    asyncio.TimeoutError,
)

UNAVAILABLE = "storage is unavailable; nothing was changed or revealed"


@contextmanager
def storage_unavailable() -> Iterator[None]:
    """Raise `Unavailable` (chained) for a storage failure inside the block."""
    try:
        yield
    except STORAGE_ERRORS as exc:
        raise Unavailable(UNAVAILABLE) from exc
