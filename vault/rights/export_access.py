"""Who received the subject's data, for an export (`vault.rights.export`): the allowed
reads of the audit trail (Art. 15(1)(c)), the systems that stored or rectified it (sources,
Art. 15(1)(g)), and the change notices sent to recipients with their confirmation (Art. 19)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import AuditAction, Decision
from vault.recipients import acks
from vault.storage.audit_tables import audit_events

#: The audited actions an export reports: reads (recipients) and writes (sources).
_ACTIONS = [
    str(AuditAction.LOOKUP),
    str(AuditAction.SUBJECT_CREATE),
    str(AuditAction.CONTACT_RECTIFY),
]


async def reads_and_writes_in(
    conn: AsyncConnection, sid: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The allowed reads (one entry each) and the systems that stored or rectified the
    contact data, oldest first; a denied read revealed nothing, a refused write changed
    nothing, so neither is listed."""
    events = (
        await conn.execute(
            select(audit_events)
            .where(audit_events.c.subject_id == sid)
            .where(audit_events.c.action.in_(_ACTIONS))
            .order_by(audit_events.c.seq)
        )
    ).all()
    recipients = []
    systems = []
    for e in events:
        fields = e.fields.split(",") if e.fields else []
        if e.decision != Decision.ALLOW:
            continue
        if e.action == AuditAction.LOOKUP:
            recipients.append(
                {
                    "client": e.actor_id,
                    "client_type": e.actor_type,
                    "purpose": e.purpose,
                    "fields": fields,
                    "at": e.at,
                }
            )
        else:
            systems.append(
                {
                    "kind": "stored" if e.action == AuditAction.SUBJECT_CREATE else "rectified",
                    "by": e.actor_id,
                    "fields": fields,
                    "at": e.at,
                }
            )
    return recipients, systems


def recipient_systems(reads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The systems that read the data, once per (system, purpose): first and last read."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reads:
        key = (r["client"], r["purpose"])
        entry = out.setdefault(
            key, {"client": r["client"], "purpose": r["purpose"], "first_at": r["at"], "reads": 0}
        )
        entry["last_at"] = r["at"]
        entry["reads"] += 1
    return list(out.values())


async def notices_in(conn: AsyncConnection, sid: str) -> list[dict[str, Any]]:
    """The recipients told about a change of the subject's mind, and what they confirmed."""
    return [
        {
            "recipient": n.recipient,
            "event": n.event_type,
            "at": n.occurred_at,
            "status": n.status,
            "delivered_at": n.delivered_at,
            "confirmed": n.ack_outcome,
            "confirmed_at": n.acked_at,
            "closed_by_dpo": n.closed_reason is not None,
        }
        for n in await acks.notices_for_subject(conn, sid)
    ]
