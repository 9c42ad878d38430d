"""The parts of the access export that come from outreach: the subject's contact preferences
and every change of them, the agreed follow-ups and the contact history.

Split from `export`, which assembles the document: each part reads its own table in the
export's transaction, so the whole export is still one consistent, audited read.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.clock import as_utc
from vault.errors import InvariantViolation
from vault.outreach import history
from vault.outreach.followups import effective_status as followup_status
from vault.outreach.preferences import load as load_preferences
from vault.storage.outreach_tables import contact_preference_history, followups

if TYPE_CHECKING:
    from vault.context import VaultContext


#: Names of the parts of a preferences document, as the audit trail names them.
_PREFERENCE_PARTS = {
    "timezone": "timezone",
    "preferred_channels": "preferred_channels",
    "quiet": "quiet",
    "monthly_cap_points": "monthly_cap",
}


def _changed_parts(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The parts a change touched, named like the audit trail names them."""
    return [name for key, name in _PREFERENCE_PARTS.items() if before.get(key) != after.get(key)]


async def preferences_in(
    conn: AsyncConnection, sid: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The subject's current preferences ({} when never set) and every change, oldest first.

    The sealed evidence (IP address, user agent) and the request id are left out."""
    current = await load_preferences(conn, sid)
    now_doc: dict[str, Any] = {}
    if current is not None:
        now_doc = {
            **current.to_json(),
            "version": current.version,
            "updated_at": current.updated_at,
        }
    rows = (
        await conn.execute(
            select(contact_preference_history)
            .where(contact_preference_history.c.subject_id == sid)
            .order_by(contact_preference_history.c.id)
        )
    ).all()
    history = []
    before: dict[str, Any] = {"preferred_channels": {}, "quiet": {}}
    for h in rows:
        after = dict(json.loads(h.preferences))
        history.append(
            {
                "version": h.version,
                "at": h.at,
                "source": h.source,
                "actor": h.actor,
                "touchpoint": h.touchpoint,
                "method": h.method,
                "notice_version": h.notice_version,
                "language": h.language,
                "changed": _changed_parts(before, after),
                "preferences": after,
            }
        )
        before = after
    return now_doc, history


async def followups_in(
    ctx: VaultContext, conn: AsyncConnection, sid: str, now: datetime
) -> list[dict[str, Any]]:
    """The subject's agreed follow-ups, earliest window first, with the status in force now."""
    rows = (
        await conn.execute(
            select(followups)
            .where(followups.c.subject_id == sid)
            .order_by(followups.c.due_from, followups.c.id)
        )
    ).all()
    out = []
    for f in rows:
        purpose = ctx.catalogue.get(f.purpose)
        due_until = as_utc(f.due_until)
        if due_until is None:
            raise InvariantViolation("due_until is unset")
        out.append(
            {
                "id": f.id,
                "purpose": f.purpose,
                "purpose_title": (
                    {"de": purpose.title_de, "en": purpose.title_en} if purpose else None
                ),
                "channel": f.channel,
                "communication_type": f.type,
                "brand": f.brand,
                "touchpoint": f.touchpoint,
                "note": f.note,
                "due_from": f.due_from,
                "due_until": due_until,
                "status": str(followup_status(f.status, due_until, now)),
                "created_at": f.created_at,
                "recorded_by": f.created_by,
                "closed_at": f.closed_at,
                "outcome": f.outcome,
            }
        )
    return out


async def contact_history_in(
    ctx: VaultContext, conn: AsyncConnection, sid: str
) -> list[dict[str, Any]]:
    """Every contact made with the subject, outbound and inbound, newest first: who (which
    system, for which brand), how (channel), why (purpose, kind of message)."""
    out = []
    for c in await history.rows_in(conn, sid):
        purpose = ctx.catalogue.get(c.purpose) if c.purpose else None
        out.append(
            {
                "id": c.id,
                "at": c.at,
                "direction": c.direction,
                "brand": c.brand,
                "channel": c.channel,
                "communication_type": c.type,
                "purpose": c.purpose,
                "purpose_title": (
                    {"de": purpose.title_de, "en": purpose.title_en} if purpose else None
                ),
                "touchpoint": c.touchpoint,
                "by": c.client,
                "points": c.points,
            }
        )
    return out
