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

The fixed texts live in `export_texts`, the outreach parts (preferences, follow-ups, contact
history) in `export_history`; this module assembles the document.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision, action_for
from vault.bases.consents import evidence_secrets, open_texts
from vault.catalogue.controller import Party
from vault.catalogue.purposes import CONTACT_FIELDS
from vault.clock import as_utc
from vault.recipients import acks
from vault.rights.erasure import read_retained
from vault.rights.export_history import contact_history_in, followups_in, preferences_in
from vault.rights.export_texts import (
    AUTOMATED_DECISIONS,
    CATEGORY_TITLES,
    LAWFUL_BASIS_TITLES,
    RIGHTS,
)
from vault.rights.requests import TYPE_TITLES
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import dsar_requests
from vault.storage.tables import consent_history, consents
from vault.subjects.decision import BasisFacts, effective_status
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


def _retention_text(days: int) -> dict[str, str]:
    return {
        "de": f"Wir löschen die Daten {days} Tage nach Ende der Rechtsgrundlage.",
        "en": f"We erase the data {days} days after the lawful basis ends.",
    }


def _recipient_systems(reads: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _purpose_entry(ctx: VaultContext, purpose_id: str) -> dict[str, Any]:
    purpose = ctx.catalogue.get(purpose_id)
    if purpose is None:
        return {"id": purpose_id, "in_catalogue": False}
    days = purpose.retention_after_end.days
    return {
        "id": purpose.id,
        "in_catalogue": True,
        "title": {"de": purpose.title_de, "en": purpose.title_en},
        "description": {"de": purpose.description_de, "en": purpose.description_en},
        "lawful_basis": purpose.lawful_basis.value,
        "lawful_basis_title": LAWFUL_BASIS_TITLES[purpose.lawful_basis.value],
        "fields": list(purpose.fields),
        "channel": purpose.channel,
        "communication_type": purpose.communication_type.value,
        "data_use": purpose.data_use,
        "retention_after_end_days": days,
        "retention": _retention_text(days),
        "third_country_transfers": [
            {
                "country": t.country,
                "recipient": t.recipient,
                "safeguard": t.safeguard,
                "safeguard_reference": t.safeguard_reference,
            }
            for t in ctx.controller.transfers_of(purpose.id)
        ],
    }


def _controller(ctx: VaultContext) -> dict[str, Any]:
    """Who is responsible for the data and how to reach its DPO (Art. 13(1)(a), (b): the
    customer asking what is held should learn whom to ask)."""

    def party(p: Party) -> dict[str, Any]:
        out = {"name": p.name, "email": p.email, "address": p.address}
        if p.representative:
            out["representative"] = p.representative
        return out

    return {**party(ctx.controller.controller), "dpo": party(ctx.controller.dpo)}


async def collect_in(
    ctx: VaultContext, conn: AsyncConnection, subject: Row[Any], now: datetime
) -> dict[str, Any]:
    """Assemble the export inside the caller's transaction (which must audit the read)."""
    sid = subject.id
    has_key = subject.wrapped_dek is not None
    contact = decrypt_fields(ctx, subject, CONTACT_FIELDS) if has_key else {}

    basis_rows = (
        await conn.execute(
            select(consents).where(consents.c.subject_id == sid).order_by(consents.c.created_at)
        )
    ).all()
    history_rows = (
        await conn.execute(
            select(consent_history)
            .where(consent_history.c.subject_id == sid)
            .order_by(consent_history.c.id)
        )
    ).all()
    by_consent: dict[str, list[dict[str, Any]]] = {}
    for h in history_rows:
        by_consent.setdefault(h.consent_id, []).append(
            {
                "at": h.at,
                "event": h.event,
                "status": h.status,
                "actor": h.actor,
                "expires_at": h.expires_at,
            }
        )
    consent_items = []
    touchpoints = []
    any_secret = False
    for c in basis_rows:
        facts = BasisFacts(c.id, c.basis, c.status, c.expires_at, c.confirm_deadline)
        texts = open_texts(ctx, subject, c)
        evidence = {
            "touchpoint": c.touchpoint,
            "method": c.method,
            "notice_version": texts["notice_version"],
            "notice_text_hash": c.notice_text_hash,
            "language": c.language,
            "collected_by": c.collected_by,
            "brands": c.brands.split(",") if c.brands else None,
        }
        if has_key and c.evidence_ct is not None:
            evidence.update(await evidence_secrets(ctx, conn, subject, c))
            any_secret = True
        consent_items.append(
            {
                "id": c.id,
                "purpose": c.purpose,
                "basis": c.basis,
                "status": str(effective_status(facts, now)),
                "reference": texts["reference"],
                "created_at": c.created_at,
                "granted_at": c.granted_at,
                "expires_at": c.expires_at,
                "withdrawn_at": c.withdrawn_at,
                "confirm_deadline": c.confirm_deadline,
                "evidence": {k: v for k, v in evidence.items() if v is not None},
                # The fields the customer left out of this consent (never revealed for it).
                "excluded_fields": c.excluded_fields.split(",") if c.excluded_fields else [],
                "history": by_consent.get(c.id, []),
            }
        )
        if c.touchpoint:
            touchpoints.append(
                {
                    "kind": "touchpoint",
                    "touchpoint": c.touchpoint,
                    "method": c.method,
                    "purpose": c.purpose,
                    "at": c.created_at,
                    "collected_by": c.collected_by,
                }
            )

    events = (
        await conn.execute(
            select(audit_events)
            .where(audit_events.c.subject_id == sid)
            .where(
                audit_events.c.action.in_(
                    [
                        str(AuditAction.LOOKUP),
                        str(AuditAction.SUBJECT_CREATE),
                        str(AuditAction.CONTACT_RECTIFY),
                    ]
                )
            )
            .order_by(audit_events.c.seq)
        )
    ).all()
    recipients = []
    systems = []
    for e in events:
        fields = e.fields.split(",") if e.fields else []
        if e.decision != Decision.ALLOW:
            continue  # a denied read revealed nothing; a refused write changed nothing
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

    recipient_systems = _recipient_systems(recipients)
    notices = [
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

    retained = await read_retained(ctx, conn, sid)
    request_rows = (
        await conn.execute(
            select(dsar_requests)
            .where(dsar_requests.c.subject_id == sid)
            .order_by(dsar_requests.c.received_at)
        )
    ).all()
    requests = [
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

    preferences, preference_history = await preferences_in(conn, sid)
    agreed_followups = await followups_in(ctx, conn, sid, now)
    contact_history = await contact_history_in(ctx, conn, sid)

    purpose_ids = sorted({c.purpose for c in basis_rows} | {r["purpose"] for r in retained})
    purposes = [_purpose_entry(ctx, p) for p in purpose_ids]
    category_keys = [f for f in CONTACT_FIELDS if f in contact]
    for r in retained:
        category_keys += [f for f in r["fields"] if f not in category_keys]
    if basis_rows:
        category_keys.append("consents")
    if any_secret:
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
        "controller": _controller(ctx),
        "subject": {
            "subject_id": sid,
            "status": subject.status,
            "created_at": subject.created_at,
            "erased_at": subject.erased_at,
            "marketing_objection_at": subject.marketing_objection_at,
        },
        "contact_data": contact,
        "categories": [{"category": k, **CATEGORY_TITLES[k]} for k in category_keys],
        "consents": consent_items,
        "purposes": purposes,
        "recipients": recipients,
        # Art. 15(1)(c), Art. 19: each system once per purpose, first and last read; and
        # which of them were told about a change of the customer's mind, and confirmed.
        "recipient_systems": recipient_systems,
        "recipient_notices": notices,
        "sources": touchpoints + systems,
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
