"""What a basis record is (`Evidence` given with it, the `BasisRecord` callers see), the
facts its effective status is decided on, and its append-only history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import Actor
from vault.clock import as_utc
from vault.storage.tables import consent_history
from vault.subjects.decision import BasisFacts, effective_status

if TYPE_CHECKING:
    from vault.context import VaultContext


COLLECTION_METHODS = (
    "web_form",
    "checkbox",
    "double_opt_in",
    "paper_form",
    "signature",
    "recorded_call",
    "email_reply",
    "in_person",
    "app",
)
LANGUAGES = ("de", "en")


@dataclass(frozen=True, slots=True)
class Evidence:
    """How and where a consent was given. `ip` and `user_agent` are sealed at rest."""

    touchpoint: str
    method: str
    notice_version: str
    language: str
    notice_text_hash: str | None = None
    explicit: bool = False
    ip: str | None = None
    user_agent: str | None = None
    #: The brands the consent was given for (the form's brand, say); empty: every brand
    #: the purpose covers.
    brands: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BasisRecord:
    id: str
    subject_id: str
    purpose: str
    basis: str
    status: str
    reference: str | None
    created_at: datetime
    granted_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    confirm_deadline: datetime | None
    evidence: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The purpose's fields the customer left out of this consent (sorted; empty: none).
    excluded_fields: list[str] = field(default_factory=list)


def basis_facts(row: Any) -> BasisFacts:
    """The facts of a row the effective status is decided on (`vault.subjects.decision`)."""
    return BasisFacts(
        id=row.id,
        basis=row.basis,
        status=row.status,
        expires_at=row.expires_at,
        confirm_deadline=row.confirm_deadline,
    )


async def add_history(
    conn: AsyncConnection,
    *,
    consent_id: str,
    subject_id: str,
    at: datetime,
    event: str,
    status: str,
    actor: Actor,
    expires_at: datetime | None,
) -> None:
    """One append-only `consent_history` row: a record's history is never rewritten."""
    await conn.execute(
        insert(consent_history).values(
            consent_id=consent_id,
            subject_id=subject_id,
            at=at,
            event=event,
            status=status,
            actor=actor.label,
            expires_at=expires_at,
        )
    )


def to_record(
    ctx: VaultContext, row: Any, texts: dict[str, str | None], history: list[Any]
) -> BasisRecord:
    """The record callers see: the opened texts, the evidence, the status now, the history."""
    now = ctx.clock.now()
    evidence: dict[str, Any] = {
        "touchpoint": row.touchpoint,
        "method": row.method,
        "notice_version": texts["notice_version"],
        "notice_text_hash": row.notice_text_hash,
        "language": row.language,
        "collected_by": row.collected_by,
        "brands": row.brands.split(",") if row.brands else None,
    }
    return BasisRecord(
        id=row.id,
        subject_id=row.subject_id,
        purpose=row.purpose,
        basis=row.basis,
        status=str(effective_status(basis_facts(row), now)),
        reference=texts["reference"],
        created_at=as_utc(row.created_at),
        granted_at=as_utc(row.granted_at),
        expires_at=as_utc(row.expires_at),
        withdrawn_at=as_utc(row.withdrawn_at),
        confirm_deadline=as_utc(row.confirm_deadline),
        evidence={k: v for k, v in evidence.items() if v is not None},
        excluded_fields=row.excluded_fields.split(",") if row.excluded_fields else [],
        history=[
            {
                "at": as_utc(h.at),
                "event": h.event,
                "status": h.status,
                "actor": h.actor,
                "expires_at": as_utc(h.expires_at),
            }
            for h in history
        ],
    )
