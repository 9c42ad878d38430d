"""Streaming export of audit events by time range (JSON Lines or CSV), flat in memory.

`iter_events` is the operator's export (`tresor audit export`); `filtered_export` is the
DPO's (console): the same columns for the events a search filter matches, recorded as a
`dpo:audit:export` event that is committed before the first line leaves the vault.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vault.audit import events as audit
from vault.audit.chain_links import EVENT_COLUMNS, select_events_with_seals
from vault.audit.events import Actor, AuditAction, Decision
from vault.audit.query import AuditFilter, conditions, validate_filter
from vault.clock import as_utc
from vault.errors import InvalidInput
from vault.storage.audit_tables import audit_events

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The sealed event columns, then the chain columns that let an auditor re-check the seals.
EXPORT_COLUMNS = (*EVENT_COLUMNS, "chain_pos", "chain_mac")


#: The formats a DPO may export in.
FORMATS = ("csv", "jsonl")


async def iter_events(
    ctx: VaultContext,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 5000,
    filters: AuditFilter | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Events with since <= at < until (and matching `filters`) in sequence order, read in
    keyset pages."""
    after = 0
    where = conditions(filters) if filters is not None else []
    while True:
        stmt = select_events_with_seals().where(audit_events.c.seq > after, *where)
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


async def filtered_export(
    ctx: VaultContext, actor: Actor, filters: AuditFilter, fmt: str
) -> AsyncIterator[str]:
    """The lines (header first for CSV) of every event `filters` match, oldest first.

    The filter is validated and the export recorded (`dpo:audit:export`, with the filter and
    format, never contact data) before this returns: an export that cannot be recorded
    does not start (fail closed). The events are read in pages as the caller streams them.
    """
    if fmt not in FORMATS:
        raise InvalidInput("unknown export format", {"format": "must be csv or jsonl"})
    f = validate_filter(filters)
    async with ctx.transaction() as conn:
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=AuditAction.DPO_AUDIT_EXPORT,
            decision=Decision.ALLOW,
            subject_id=f.subject_id,
            purpose=f.purpose,
            detail={"filters": f.as_detail(), "format": fmt},
        )
    return _lines(ctx, f, fmt)


async def _lines(ctx: VaultContext, f: AuditFilter, fmt: str) -> AsyncIterator[str]:
    if fmt == "csv":
        yield csv_header()
    async for item in iter_events(ctx, filters=f):
        yield to_csv(item) if fmt == "csv" else to_jsonl(item)
