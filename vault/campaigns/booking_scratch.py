"""The scratch tables of one booking (`vault.campaigns.basket_holds`): temporary tables,
never logged and gone with the connection, so that a million-member booking reads the
audience, the counter rows and the consents once and later statements only scan these.
Each is created empty at the start of the step that fills it and dropped at the end."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.storage.dialect import probe_index

#: The scratch table of one booking (temporary; see the module docstring). One row per
#: member; keyed only where the database needs it (`scratch`).
members = Table(
    "tmp_plan_members",
    MetaData(),
    Column("subject_id", String(36), nullable=False),
    Column("basis", Boolean, nullable=False),
    Column("fresh", Boolean, nullable=False),
    Column("used", Integer, nullable=False, server_default="0"),
    Column("booked", Integer, nullable=False, server_default="0"),
    prefixes=["TEMPORARY"],
)
#: The holds one booking displaces (temporary): counted, and what they free given back,
#: from here. `freed` is on each member's last displaced hold (in displacement order) what
#: all of its displaced holds free, 0 on the others: one row per member to join, no sum.
displaced_holds = Table(
    "tmp_plan_displaced",
    MetaData(),
    Column("campaign_id", String(36), nullable=False),
    Column("subject_id", String(36), nullable=False),
    Column("points", Integer, nullable=False),
    Column("freed", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)


async def scratch(conn: AsyncConnection, table: Table) -> None:
    """A fresh, empty scratch table (one left by an earlier transaction on this
    connection is dropped first). The members' table gets its subject ids indexed where
    the fill's `NOT EXISTS` would otherwise scan it per audience row (`probe_index`)."""
    await drop(conn, table)
    await conn.run_sync(table.create)
    if table is members:
        await probe_index(conn, table, "subject_id")


async def drop(conn: AsyncConnection, table: Table) -> None:
    """Drop a scratch table if this connection has it."""
    await conn.execute(text(f"DROP TABLE IF EXISTS {table.name}"))


def byte_order(conn: AsyncConnection, column: Any) -> Any:
    """`column` for sorting and partitioning a million subject ids: PostgreSQL's "C"
    collation compares bytes where the database's collation calls the C library per
    comparison, several times slower; for subject ids (ASCII) both give the same order and
    the same groups. SQLite compares bytes already."""
    if conn.dialect.name == "postgresql":
        return column.collate("C")
    return column
