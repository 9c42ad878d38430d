"""Engine factory and schema migration entry points."""

from __future__ import annotations

from typing import Any

from alembic import command, op
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vault.bundled import bundled
from vault.storage.sqlite_inline import connect_inline

#: The repository's migrations/, or the copy an installed wheel carries.
MIGRATIONS_DIR = bundled("migrations")


def make_engine(url: str, *, pool_size: int = 40, sqlite_synchronous: str = "full") -> AsyncEngine:
    """An async engine tuned for the vault's short transactions.

    SQLite: WAL, a busy timeout instead of immediate "database is locked" errors, foreign
    keys on, and real transactions: the sqlite3 driver would otherwise only BEGIN before the
    first write, so a lookup's read and its audit insert would not be one transaction.
    `BEGIN IMMEDIATE` takes the write lock up front, which serialises transactions (SQLite
    has one writer anyway) and avoids SQLITE_BUSY when a read transaction upgrades to write.
    `sqlite_synchronous` (`normal` or `full`, TRESOR_SQLITE_SYNCHRONOUS for the vault;
    `full` for tools and tests that call this directly) sets `PRAGMA synchronous`.
    PostgreSQL: a pool large enough that requests do not queue for connections at the expected
    concurrency.
    """
    if url.startswith("sqlite"):
        synchronous = {"normal": "NORMAL", "full": "FULL"}[sqlite_synchronous]
        path = make_url(url).database or ":memory:"
        # A transaction's steps run on the event loop, its BEGIN and COMMIT on aiosqlite's
        # thread (`vault.storage.sqlite_inline`).
        engine = create_async_engine(
            url,
            async_creator=lambda: connect_inline(path, commit_inline=synchronous == "NORMAL"),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            # Erased data must not linger in free pages of the file (crypto-shredding
            # covers ciphertexts; this also covers blind indexes and metadata).
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        # Overflow connections are closed on return, so a pool smaller than the load means
        # a TCP (and TLS) handshake per request; keep the steady state inside pool_size.
        max_overflow=pool_size // 4,
        pool_recycle=1800,
    )


def make_read_engine(url: str) -> AsyncEngine:
    """SQLite: an engine for read snapshots beside the writer. Same pragmas, but its
    transactions begin deferred (a WAL read snapshot, no write lock), so the hot paths'
    reads do not queue behind writes; their audit events go through the group commit."""
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=ON")  # this engine never writes
        cur.close()
        dbapi_conn.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (synchronously; call from a thread in async code)."""
    command.upgrade(alembic_config(url), revision)


def create_index_concurrently(name: str, table: str, columns: list[str], **kw: Any) -> None:
    """For migrations: build an index without blocking writes to a live table.

    On PostgreSQL the index is built `CONCURRENTLY`, which cannot run in a transaction: the
    migration's transaction is committed first and the build runs in an autocommit block
    (the session's lock and statement timeouts from migrations/env.py still apply; the
    migrations before it stay committed should it fail). A failed concurrent build leaves an
    INVALID index: drop it before retrying. SQLite builds it as usual, inside the
    transaction. Call it as the only, or last, step of a migration.
    """
    context = op.get_context()
    if context.dialect.name != "postgresql":
        op.create_index(name, table, columns, **kw)
        return
    with context.autocommit_block():
        op.create_index(name, table, columns, postgresql_concurrently=True, **kw)


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database (readiness); raises whatever the driver raises."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
