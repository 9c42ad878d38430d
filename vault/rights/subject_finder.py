"""The DPO finds a subject by an identifier and reads what the vault knows about them,
without their contact data.

A DPO holding a customer's letter knows an e-mail address, a phone number or a customer
number, never the pseudonymous subject id. `find_subject` normalises the value like stored
values and looks it up through the blind index (`vault.subjects.store.identifier_digest`),
the same way the lookup does; the value itself is neither stored nor logged, and the
`dpo:subject:search` event names only the kind of identifier and the subject found.

`subject_overview` is what the console shows then: the subject's status, its lawful bases
(purpose, basis, status, times), its requests and the access history from the audit trail
(who read which fields for which purpose, when). Contact values are not part of it: the DPO
opens them only through the audited Art. 15 export. The read is recorded
(`dpo:subject:read`) before anything is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from vault.audit import events as audit
from vault.audit.chain_links import select_events_with_seals
from vault.audit.events import Actor, AuditAction, Decision
from vault.audit.query import AuditItem, audit_item
from vault.clock import as_utc
from vault.errors import InvalidInput
from vault.rights.requests import RequestRecord, list_requests
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consents, subjects
from vault.subjects.store import INDEXED, identifier_digest, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The identifiers a DPO may search by: e-mail, phone, customer number (external reference).
KINDS = tuple(INDEXED)
#: How many access events the overview shows (newest first); the audit search has the rest.
ACCESS_HISTORY = 50
#: The reads of contact data a subject's access history lists.
_ACCESS_ACTIONS = (
    AuditAction.LOOKUP,
    AuditAction.DPO_EXPORT_READ,
    AuditAction.SUBJECT_EXPORT_READ,
    AuditAction.SELF_CONTACT_READ,
)


@dataclass(frozen=True, slots=True)
class BasisLine:
    """One lawful basis of the subject: ids, kinds and times, no evidence values."""

    id: str
    purpose: str
    basis: str
    status: str
    granted_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None


@dataclass(frozen=True, slots=True)
class SubjectOverview:
    subject_id: str
    status: str
    created_at: datetime
    marketing_objection_at: datetime | None
    bases: list[BasisLine]
    requests: list[RequestRecord]
    access: list[AuditItem]


async def find_subject(ctx: VaultContext, actor: Actor, kind: str, value: str) -> str | None:
    """The id of the subject whose `kind` identifier is `value`, or None; recorded either way.

    `InvalidInput` (naming the field, never the value) for an unknown kind or a value that
    is not a valid e-mail address, phone number or customer number; nothing is recorded then.
    """
    if kind not in INDEXED:
        raise InvalidInput("unknown identifier", {"kind": "must be " + ", ".join(KINDS)})
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("identifier is required", {"value": "must not be empty"})
    try:
        digest = identifier_digest(ctx, kind, value)
    except InvalidInput:
        raise InvalidInput("identifier is invalid", {"value": f"is not a valid {kind}"}) from None
    column = getattr(subjects.c, INDEXED[kind])
    async with ctx.transaction() as conn:
        found = (
            await conn.execute(
                select(subjects.c.id).where(column == digest).order_by(subjects.c.created_at)
            )
        ).first()
        subject_id = found.id if found else None
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=AuditAction.DPO_SUBJECT_SEARCH,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            detail={"by": kind, "found": subject_id is not None},
        )
    return subject_id


async def subject_overview(ctx: VaultContext, actor: Actor, subject_id: str) -> SubjectOverview:
    """Status, bases, requests and access history of a subject; `NotFound` if unknown.

    Recorded (`dpo:subject:read`) in the transaction that reads it.
    """
    async with ctx.transaction() as conn:
        row = await load_subject(conn, subject_id)
        basis_rows = (
            await conn.execute(
                select(
                    consents.c.id,
                    consents.c.purpose,
                    consents.c.basis,
                    consents.c.status,
                    consents.c.granted_at,
                    consents.c.expires_at,
                    consents.c.withdrawn_at,
                )
                .where(consents.c.subject_id == subject_id)
                .order_by(consents.c.created_at, consents.c.id)
            )
        ).all()
        access_rows = (
            await conn.execute(
                select_events_with_seals()
                .where(
                    audit_events.c.subject_id == subject_id,
                    or_(*(audit_events.c.action == a for a in _ACCESS_ACTIONS)),
                )
                .order_by(audit_events.c.seq.desc())
                .limit(ACCESS_HISTORY)
            )
        ).all()
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=AuditAction.DPO_SUBJECT_READ,
            decision=Decision.ALLOW,
            subject_id=subject_id,
        )
    requests = await list_requests(ctx, subject_id=subject_id, limit=1000)
    return SubjectOverview(
        subject_id=row.id,
        status=row.status,
        created_at=as_utc(row.created_at),
        marketing_objection_at=as_utc(row.marketing_objection_at),
        bases=[
            BasisLine(
                id=b.id,
                purpose=b.purpose,
                basis=b.basis,
                status=b.status,
                granted_at=as_utc(b.granted_at),
                expires_at=as_utc(b.expires_at),
                withdrawn_at=as_utc(b.withdrawn_at),
            )
            for b in basis_rows
        ],
        requests=requests,
        access=[audit_item(r) for r in access_rows],
    )
