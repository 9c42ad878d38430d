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
"""

from __future__ import annotations

import json
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
from vault.errors import InvariantViolation
from vault.outreach import history
from vault.outreach.followups import effective_status as followup_status
from vault.outreach.preferences import load as load_preferences
from vault.recipients import acks
from vault.rights.erasure import read_retained
from vault.rights.requests import TYPE_TITLES
from vault.storage.tables import (
    audit_events,
    consent_history,
    consents,
    contact_preference_history,
    dsar_requests,
    followups,
)
from vault.subjects.decision import BasisFacts, effective_status
from vault.subjects.integrity import audited_read
from vault.subjects.store import decrypt_fields, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext

FORMAT = "tresor.export/1"

#: Categories of personal data (Art. 15(1)(b)), by field.
CATEGORY_TITLES: dict[str, dict[str, str]] = {
    "email": {"de": "E-Mail-Adresse", "en": "E-mail address"},
    "phone": {"de": "Telefonnummer", "en": "Phone number"},
    "name": {"de": "Name", "en": "Name"},
    "postal_address": {"de": "Postanschrift", "en": "Postal address"},
    "external_ref": {"de": "Kundennummer", "en": "Customer number"},
    "consents": {
        "de": "Einwilligungen und andere Rechtsgrundlagen mit Nachweis",
        "en": "Consents and other lawful bases with their evidence",
    },
    "consent_evidence": {
        "de": "IP-Adresse und Browserkennung bei Erteilung einer Einwilligung",
        "en": "IP address and browser identifier when a consent was given",
    },
    "access_log": {
        "de": "Protokoll der Zugriffe auf Ihre Daten",
        "en": "Log of the accesses to your data",
    },
    "contact_preferences": {
        "de": "Ihre Kontaktwünsche (bevorzugte Kanäle, Ruhezeiten, Zeitzone, eigenes Limit) "
        "und ihre Änderungen",
        "en": "Your contact preferences (preferred channels, quiet hours, time zone, own cap) "
        "and their changes",
    },
    "followups": {
        "de": "Vereinbarte Rückmeldungen (Zeitraum, Kanal, Anlass)",
        "en": "Agreed follow-ups (time window, channel, occasion)",
    },
    "contact_history": {
        "de": "Kontaktverlauf: wann wir Sie wie und wozu kontaktiert haben und wann Sie uns",
        "en": "Contact history: when, how and why we contacted you, and when you contacted us",
    },
}

#: Names of the parts of a preferences document, as the audit trail names them.
_PREFERENCE_PARTS = {
    "timezone": "timezone",
    "preferred_channels": "preferred_channels",
    "quiet": "quiet",
    "monthly_cap_points": "monthly_cap",
}

LAWFUL_BASIS_TITLES: dict[str, dict[str, str]] = {
    "consent": {
        "de": "Einwilligung (Art. 6 Abs. 1 lit. a DSGVO)",
        "en": "Consent (Art. 6(1)(a) GDPR)",
    },
    "contract": {
        "de": "Vertrag (Art. 6 Abs. 1 lit. b DSGVO)",
        "en": "Contract (Art. 6(1)(b) GDPR)",
    },
    "legal_obligation": {
        "de": "Rechtliche Verpflichtung (Art. 6 Abs. 1 lit. c DSGVO)",
        "en": "Legal obligation (Art. 6(1)(c) GDPR)",
    },
    "legitimate_interest": {
        "de": "Berechtigtes Interesse (Art. 6 Abs. 1 lit. f DSGVO)",
        "en": "Legitimate interest (Art. 6(1)(f) GDPR)",
    },
}

#: The subject's rights (Art. 15(1)(e), (f); Art. 7(3), 20, 21).
RIGHTS: list[dict[str, Any]] = [
    {
        "right": "access",
        "article": "Art. 15",
        "title": {"de": "Auskunft", "en": "Access"},
        "text": {
            "de": "Sie können jederzeit Auskunft über die zu Ihnen gespeicherten Daten verlangen.",
            "en": "You may ask at any time which data about you we store.",
        },
    },
    {
        "right": "rectification",
        "article": "Art. 16",
        "title": {"de": "Berichtigung", "en": "Rectification"},
        "text": {
            "de": "Sie können verlangen, dass unrichtige Daten berichtigt werden.",
            "en": "You may have inaccurate data corrected.",
        },
    },
    {
        "right": "erasure",
        "article": "Art. 17",
        "title": {"de": "Löschung", "en": "Erasure"},
        "text": {
            "de": "Sie können die Löschung Ihrer Daten verlangen, soweit keine gesetzliche "
            "Aufbewahrungspflicht entgegensteht; solche Daten sperren wir bis zum Fristende.",
            "en": "You may have your data erased unless a statutory retention duty applies; "
            "such data is restricted until the retention ends.",
        },
    },
    {
        "right": "restriction",
        "article": "Art. 18",
        "title": {"de": "Einschränkung der Verarbeitung", "en": "Restriction of processing"},
        "text": {
            "de": "Sie können verlangen, dass wir Ihre Daten nur noch speichern.",
            "en": "You may have us only store your data and not otherwise use it.",
        },
    },
    {
        "right": "portability",
        "article": "Art. 20",
        "title": {"de": "Datenübertragbarkeit", "en": "Data portability"},
        "text": {
            "de": "Sie erhalten Ihre Daten in einem maschinenlesbaren Format (JSON).",
            "en": "You receive your data in a machine-readable format (JSON).",
        },
    },
    {
        "right": "objection",
        "article": "Art. 21",
        "title": {"de": "Widerspruch", "en": "Objection"},
        "text": {
            "de": "Sie können der Verarbeitung aus berechtigtem Interesse widersprechen; "
            "einem Widerspruch gegen Direktwerbung folgen wir sofort und ausnahmslos.",
            "en": "You may object to processing based on legitimate interest; an objection "
            "to direct marketing takes effect at once and without exception.",
        },
    },
    {
        "right": "withdraw_consent",
        "article": "Art. 7(3)",
        "title": {"de": "Widerruf einer Einwilligung", "en": "Withdrawal of consent"},
        "text": {
            "de": "Sie können jede Einwilligung jederzeit mit Wirkung für die Zukunft "
            "widerrufen, so einfach, wie Sie sie erteilt haben.",
            "en": "You may withdraw any consent at any time, as easily as you gave it; the "
            "withdrawal takes effect for the future.",
        },
    },
    {
        "right": "complaint",
        "article": "Art. 77",
        "title": {
            "de": "Beschwerde bei einer Aufsichtsbehörde",
            "en": "Complaint to a supervisory authority",
        },
        "text": {
            "de": "Sie können sich bei einer Datenschutz-Aufsichtsbehörde beschweren, "
            "insbesondere in dem Land, in dem Sie leben oder arbeiten.",
            "en": "You may lodge a complaint with a data-protection supervisory authority, "
            "in particular in the country where you live or work.",
        },
    },
]

AUTOMATED_DECISIONS = {
    "exists": False,
    "text": {
        "de": "Wir treffen keine ausschließlich automatisierten Entscheidungen und betreiben "
        "kein Profiling im Sinne von Art. 22 DSGVO.",
        "en": "We make no decisions based solely on automated processing and do no "
        "profiling within the meaning of Art. 22 GDPR.",
    },
}

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


def _changed_parts(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The parts a change touched, named like the audit trail names them."""
    return [name for key, name in _PREFERENCE_PARTS.items() if before.get(key) != after.get(key)]


async def _preferences_in(
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


async def _followups_in(
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


async def _contact_history_in(
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

    preferences, preference_history = await _preferences_in(conn, sid)
    agreed_followups = await _followups_in(ctx, conn, sid, now)
    contact_history = await _contact_history_in(ctx, conn, sid)

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
