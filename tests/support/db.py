"""Reading the database in tests, alike on SQLite and PostgreSQL: the audit trail and row
counts, which many test modules check (one definition instead of one per module)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from vault.context import VaultContext
from vault.storage.audit_tables import audit_events


async def audit_trail(vault: VaultContext, action: str | None = None) -> list[Any]:
    """The audit events in chain (`seq`) order; only those of `action` when given."""
    stmt = select(audit_events).order_by(audit_events.c.seq)
    if action is not None:
        stmt = stmt.where(audit_events.c.action == str(action))
    async with vault.engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def count_rows(vault: VaultContext, table: Any) -> int:
    """How many rows `table` holds."""
    async with vault.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
