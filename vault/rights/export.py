"""The access and portability export (GDPR Art. 15(1)(a)-(h), Art. 15(3), Art. 20).

One machine-readable document (JSON-ready: every date is an ISO 8601 string) with the
contact data, every consent and other basis with its evidence (including the sealed IP
address and user agent) and history, the purposes with lawful basis and retention, the
recipients (which internal systems read the data, for which purpose, which fields, when —
from the audit trail), the sources (touchpoints of the consents and the systems that stored
the data), the subject's rights, and the subject's requests. After an erasure it holds what
was kept under Art. 17(3)(b) and when that is shredded.

It also holds the subject's own contact preferences (preferred channels, quiet hours, time
zone, own cap), every change of them (when, by whom, from which touchpoint, what changed
and the preferences after it — not the sealed IP address and user agent of the
instruction), and the agreed follow-ups (window, channel, purpose, touchpoint, status).
An erased subject has none of these any more (`vault.rights.erasure` deletes them): the sections
are empty.

Reading for an export is audited like any access (`subject:export:read` when the subject
reads its own, `dpo:export:read` otherwise), in the same transaction as the read. Sealed
data that fails to open makes the whole export an audited refusal (`vault.subjects.integrity`): an
export with a part silently missing would misinform the subject.

The fixed texts live in `export_texts`, the consents in `export_consents`, the recipients
and sources from the audit trail in `export_access`, the purposes and the controller in
`export_purposes`, the outreach parts (preferences, follow-ups, contact history) in
`export_history`; this module assembles the document.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, Decision, action_for
from vault.catalogue.purposes import CONTACT_FIELDS
from vault.clock import as_utc
from vault.rights.erasure import read_retained
from vault.rights.export_access import notices_in, reads_and_writes_in, recipient_systems
from vault.rights.export_consents import consents_in
from vault.rights.export_history import contact_history_in, followups_in, preferences_in
from vault.rights.export_purposes import controller_entry, purpose_entry
from vault.rights.export_texts import AUTOMATED_DECISIONS, CATEGORY_TITLES, RIGHTS
from vault.rights.requests import TYPE_TITLES
from vault.storage.rights_tables import dsar_requests
from vault.subjects.integrity import audited_read
from vault.subjects.store import decrypt_fields, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext

FORMAT = "tresor.export/1"


#: Where each item of Art. 15(1) is answered in the document.
ART_15_INDEX = {
    "a_purposes": "purposes",
    "b_categories": "categories",
    "c_recipients": "recipients",
    "d_retention": "retention",
    "e_rights": "rights",
    "f_complaint": "rights[right=complaint]",
    "g_sources": "sources",
    "h_automated_decisions": "automated_decision_making",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


async def _requests_in(conn: AsyncConnection, sid: str) -> list[dict[str, Any]]:
    """The subject's own requests (Art. 15-22), oldest first, with their deadlines."""
    request_rows = (
        await conn.execute(
            select(dsar_requests)
            .where(dsar_requests.c.subject_id == sid)
            .order_by(dsar_requests.c.received_at)
        )
    ).all()
    return [
        {
            "id": r.id,
            "type": r.type,
            "title": dict(
                zip(("de", "en"), TYPE_TITLES.get(r.type, (r.type, r.type)), strict=True)
            ),
            "status": r.status,
            "channel": r.channel,
            "received_at": r.received_at,
            "due_at": r.due_at,
            "extended_at": r.extended_at,
            "extension_reason": r.extension_reason,
            "completed_at": r.completed_at,
            "outcome_reason": r.outcome_reason,
        }
        for r in request_rows
    ]


async def collect_in(
    ctx: VaultContext, conn: AsyncConnection, subject: Row[Any], now: datetime
) -> dict[str, Any]:
    """Assemble the export inside the caller's transaction (which must audit the read)."""
    sid = subject.id
    has_key = subject.wrapped_dek is not None
    contact = decrypt_fields(ctx, subject, CONTACT_FIELDS) if has_key else {}
    bases = await consents_in(ctx, conn, subject, now)
    recipients, systems = await reads_and_writes_in(conn, sid)
    notices = await notices_in(conn, sid)
    retained = await read_retained(ctx, conn, sid)
    requests = await _requests_in(conn, sid)
    preferences, preference_history = await preferences_in(conn, sid)
    agreed_followups = await followups_in(ctx, conn, sid, now)
    contact_history = await contact_history_in(ctx, conn, sid)

    purpose_ids = sorted(bases.purposes | {r["purpose"] for r in retained})
    purposes = [purpose_entry(ctx, p) for p in purpose_ids]
    category_keys = [f for f in CONTACT_FIELDS if f in contact]
    for r in retained:
        category_keys += [f for f in r["fields"] if f not in category_keys]
    if bases.items:
        category_keys.append("consents")
    if bases.any_secret:
        category_keys.append("consent_evidence")
    if recipients:
        category_keys.append("access_log")
    if preferences or preference_history:
        category_keys.append("contact_preferences")
    if agreed_followups:
        category_keys.append("followups")
    if contact_history:
        category_keys.append("contact_history")
    doc = {
        "format": FORMAT,
        "generated_at": now,
        "controller": controller_entry(ctx),
        "subject": {
            "subject_id": sid,
            "status": subject.status,
            "created_at": subject.created_at,
            "erased_at": subject.erased_at,
            "marketing_objection_at": subject.marketing_objection_at,
        },
        "contact_data": contact,
        "categories": [{"category": k, **CATEGORY_TITLES[k]} for k in category_keys],
        "consents": bases.items,
        "purposes": purposes,
        "recipients": recipients,
        # Art. 15(1)(c), Art. 19: each system once per purpose, first and last read; and
        # which of them were told about a change of the customer's mind, and confirmed.
        "recipient_systems": recipient_systems(recipients),
        "recipient_notices": notices,
        "sources": bases.touchpoints + systems,
        "retention": {
            "purposes": [
                {
                    "purpose": p["id"],
                    "retention_after_end_days": p.get("retention_after_end_days"),
                    "retention": p.get("retention"),
                }
                for p in purposes
            ],
            "retained_after_erasure": retained,
        },
        "rights": RIGHTS,
        "automated_decision_making": AUTOMATED_DECISIONS,
        "requests": requests,
        "contact_preferences": preferences,
        "contact_preference_history": preference_history,
        "followups": agreed_followups,
        "contact_history": contact_history,
        "art15_index": ART_15_INDEX,
    }
    jsonable: dict[str, Any] = _jsonable(doc)  # a dict stays a dict
    return jsonable


async def build_export(ctx: VaultContext, actor: Actor, subject_id: str) -> dict[str, Any]:
    """The subject's Art. 15 / Art. 20 export; the read is audited in the same transaction.

    Raises `NotFound` for an unknown subject. An erased subject's export holds no contact
    data, only what was kept under Art. 17(3)(b) (and its shredding date).
    """
    now = ctx.clock.now()
    action = action_for(actor, "export:read")
    async with audited_read(ctx, actor, action, at=now, subject_id=subject_id) as read:
        conn = read.conn
        subject = await load_subject(conn, subject_id)
        doc = await collect_in(ctx, conn, subject, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            fields=[c["category"] for c in doc["categories"] if c["category"] in CONTACT_FIELDS],
            detail={
                "consents": len(doc["consents"]),
                "recipients": len(doc["recipients"]),
                "retained": len(doc["retention"]["retained_after_erasure"]),
                "preference_changes": len(doc["contact_preference_history"]),
                "followups": len(doc["followups"]),
                "contacts": len(doc["contact_history"]),
            },
        )
    return doc
