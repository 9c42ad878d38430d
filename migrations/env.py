"""Alembic environment: runs migrations over the vault's async engine.

On PostgreSQL, one migrator at a time: a session-level advisory lock serialises two
`tresor db upgrade` (or `init`) runs, so the second waits (up to the statement timeout) and
then finds the schema current instead of racing the first. Lock and statement timeouts keep
a migration from queueing behind live traffic forever; a migration that cannot get its lock
fails fast and can be retried. They are set for the session, not the transaction, so they
also hold in the autocommit blocks that build indexes `CONCURRENTLY`
(`vault.storage.db.create_index_concurrently`).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from vault.storage.audit_tables import include_name
from vault.storage.tables import metadata

config = context.config
target_metadata = metadata

#: The advisory lock every migrator of this database takes: "tresor" and 2 (the audit
#: sealer's is "tresor" and 1, `vault.audit.chain.SEALER_LOCK_ID`).
MIGRATION_LOCK_ID = 0x7472_6573_6F72_0002
MIGRATION_LOCK = f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"
MIGRATION_UNLOCK = f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"


def _lock(connection) -> None:
    """Wait for the migration lock (bounded by the statement timeout, as no lock timeout is
    set yet), then fail fast on any table lock live traffic holds. Committed at once, so
    alembic begins its own transaction; the lock and the settings stay with the session."""
    connection.exec_driver_sql("SET statement_timeout = '120s'")
    connection.exec_driver_sql(MIGRATION_LOCK)
    connection.exec_driver_sql("SET lock_timeout = '5s'")
    connection.commit()


def _configure_and_run(connection) -> None:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        _lock(connection)
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if postgres:
            connection.exec_driver_sql(MIGRATION_UNLOCK)
            connection.commit()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_configure_and_run)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(_run_async())
