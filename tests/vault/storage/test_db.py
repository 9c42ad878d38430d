"""The migration helper for indexes on live tables, on both databases."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from alembic import op
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import event, inspect

from vault.storage.db import create_index_concurrently, make_engine


async def _migrate_and_inspect(url: str, table: str, statements: list[str]) -> list[str]:
    """Create `table`, index it with the helper inside a migration transaction, and return
    the indexes the database then reports; the table is dropped again."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            def migrate(sync_conn: sa.Connection) -> list[str]:
                event.listen(sync_conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
                ctx = MigrationContext.configure(sync_conn)
                with Operations.context(ctx), ctx.begin_transaction():
                    op.create_table(table, sa.Column("v", sa.Integer))
                    create_index_concurrently(f"ix_{table}_v", table, ["v"])
                return [ix["name"] for ix in inspect(sync_conn).get_indexes(table)]

            try:
                return await conn.run_sync(migrate)
            finally:
                await conn.rollback()
                await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
                await conn.commit()
    finally:
        await engine.dispose()


def test_an_index_on_a_live_table_is_built_concurrently_on_postgresql_only(db_url: str):
    """The helper builds the index CONCURRENTLY, outside the transaction, on PostgreSQL, and
    as a plain index inside it on SQLite; either way the index exists afterwards."""
    table = f"ix_probe_{uuid.uuid4().hex[:8]}"
    statements: list[str] = []
    indexes = asyncio.run(_migrate_and_inspect(db_url, table, statements))
    assert indexes == [f"ix_{table}_v"]
    (create,) = [s for s in statements if s.startswith("CREATE INDEX")]
    assert ("CONCURRENTLY" in create) == db_url.startswith("postgresql")
