"""The consents and other bases of an export (`vault.rights.export`): each with its
evidence (including the sealed IP address and user agent, opened here), its history and
its effective status; and the touchpoints that collected them, as sources (Art. 15(1)(g))."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.bases.consents import evidence_secrets, open_texts
from vault.storage.tables import consent_history, consents
from vault.subjects.decision import BasisFacts, effective_status

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class ConsentSection:
    """The subject's bases in creation order, the touchpoints that collected them, their
    purposes, and whether any sealed evidence was opened (a category of its own)."""

    items: list[dict[str, Any]]
    touchpoints: list[dict[str, Any]]
    purposes: set[str]
    any_secret: bool


async def _history_by_consent(conn: AsyncConnection, sid: str) -> dict[str, list[dict[str, Any]]]:
    rows = (
        await conn.execute(
            select(consent_history)
            .where(consent_history.c.subject_id == sid)
            .order_by(consent_history.c.id)
        )
    ).all()
    by_consent: dict[str, list[dict[str, Any]]] = {}
    for h in rows:
        by_consent.setdefault(h.consent_id, []).append(
            {
                "at": h.at,
                "event": h.event,
                "status": h.status,
                "actor": h.actor,
                "expires_at": h.expires_at,
            }
        )
    return by_consent


async def consents_in(
    ctx: VaultContext, conn: AsyncConnection, subject: Row[Any], now: datetime
) -> ConsentSection:
    """Every basis of the subject with its evidence and history, inside the caller's
    (audited) transaction; sealed evidence only while the subject still has its key."""
    sid = subject.id
    has_key = subject.wrapped_dek is not None
    basis_rows = (
        await conn.execute(
            select(consents).where(consents.c.subject_id == sid).order_by(consents.c.created_at)
        )
    ).all()
    by_consent = await _history_by_consent(conn, sid)
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
    return ConsentSection(consent_items, touchpoints, {c.purpose for c in basis_rows}, any_secret)
