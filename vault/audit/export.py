"""Streaming export of audit events by time range (JSON Lines or CSV), flat in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vault.audit.chain import EVENT_COLUMNS, select_events_with_seals
from vault.clock import as_utc
from vault.storage.tables import audit_events

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The sealed event columns, then the chain columns that let an auditor re-check the seals.
EXPORT_COLUMNS = (*EVENT_COLUMNS, "chain_pos", "chain_mac")


async def iter_events(
    ctx: VaultContext,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 5000,
) -> AsyncIterator[dict[str, Any]]:
    """Events with since <= at < until in sequence order, read in keyset pages."""
    after = 0
    while True:
        stmt = select_events_with_seals().where(audit_events.c.seq > after)
        if since is not None:
            stmt = stmt.where(audit_events.c.at >= since)
        if until is not None:
            stmt = stmt.where(audit_events.c.at < until)
        async with ctx.transaction() as conn:
            rows = (await conn.execute(stmt.order_by(audit_events.c.seq).limit(page))).all()
        if not rows:
            return
        for row in rows:
            item = {name: getattr(row, name) for name in EXPORT_COLUMNS}
            item["at"] = as_utc(item["at"]).isoformat()
            yield item
        after = rows[-1].seq


def to_jsonl(item: dict[str, Any]) -> str:
    return json.dumps(item, ensure_ascii=False, sort_keys=False) + "\n"


def csv_header() -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(EXPORT_COLUMNS)
    return buf.getvalue()


def to_csv(item: dict[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if item[c] is None else item[c] for c in EXPORT_COLUMNS])
    return buf.getvalue()
