"""The subject's own view in the privacy centre ("my data"): contact data, consents and
which internal system accessed the data, and withdrawing a consent in one click."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases import consents
from vault.catalogue.purposes import LawfulBasis
from vault.clock import as_utc
from vault.errors import Conflict, NotFound
from vault.storage.audit_tables import audit_events
from vault.storage.tables import clients
from vault.storage.tables import consents as consents_table
from vault.subjects import identity
from vault.subjects.decision import BasisFacts, BasisStatus, effective_status
from vault.subjects.integrity import audited_read
from vault.subjects.store import SubjectStatus, decrypt_fields, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


#: How many access-log entries the subject's view shows (newest first).
ACCESS_LOG_LIMIT = 200
#: What the subject's access log lists, by audit action, and the kind it shows (labels:
#: api/i18n.py `access_<kind>`). Default deny: an action not named here is not listed.
#: Lookups by anyone (as always); the rest only when a client did it, since a DPO's work
#: and the subject's own reads are not accesses by an internal system. A follow-up's use
#: is listed through the lookup or recorded contact that used it.
ACCESS_KINDS = {
    AuditAction.LOOKUP: "lookup",
    AuditAction.AUDIENCE_DRY_RUN: "audience_check",
    AuditAction.CONTACT_RECORD: "contact_record",
    AuditAction.CONSENT_LIST: "consents_read",
    AuditAction.CLIENT_PREFERENCES_READ: "preferences_read",
    AuditAction.FOLLOWUP_READ: "followup_read",
    AuditAction.CONTACT_HISTORY_READ: "contact_history_read",
    AuditAction.ACCESS_DENIED: "refused",
}


@dataclass(frozen=True, slots=True)
class ConsentView:
    id: str
    purpose: str
    title_de: str
    title_en: str
    basis: str
    status: str
    touchpoint: str | None
    method: str | None
    given_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    #: A consent in force (or awaiting confirmation) can be withdrawn here in one click;
    #: contract and legal-obligation bases end with the contract or by a request.
    withdrawable: bool
    #: The purpose's fields the customer left out of this consent.
    excluded: tuple[str, ...] = ()

    def title(self, language: str) -> str:
        return self.title_de if language == "de" else self.title_en


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access of an internal system to the subject's data (from the audit trail): a
    lookup, being counted in an audience check, a recorded contact, ... (`kind`, one of
    `ACCESS_KINDS`' values)."""

    at: datetime
    client: str
    actor_type: str
    purpose: str | None
    title_de: str | None
    title_en: str | None
    fields: list[str]
    decision: str
    reason: str | None
    kind: str = "lookup"
    #: The name customers read for the client (`tresor clients ... --display-name`), if set.
    client_display: str | None = None

    def title(self, language: str) -> str | None:
        return self.title_de if language == "de" else self.title_en

    @property
    def system(self) -> str:
        """Who accessed the data, as the customer should read it."""
        return self.client_display or self.client


@dataclass(frozen=True, slots=True)
class SelfView:
    subject_id: str
    status: str
    contact: dict[str, Any]
    consents: list[ConsentView] = field(default_factory=list)
    access_log: list[AccessEntry] = field(default_factory=list)
    #: Set for a session through an unconfirmed new e-mail address: contact data hidden.
    restriction: identity.Restriction | None = None


_READ_FIELDS = ("email", "phone", "name", "postal_address", "external_ref")


def _consent_view(ctx: VaultContext, row: Any, now: datetime) -> ConsentView:
    purpose = ctx.catalogue.get(row.purpose)
    status = effective_status(
        BasisFacts(row.id, row.basis, row.status, row.expires_at, row.confirm_deadline), now
    )
    return ConsentView(
        id=row.id,
        purpose=row.purpose,
        title_de=purpose.title_de if purpose else row.purpose,
        title_en=purpose.title_en if purpose else row.purpose,
        basis=row.basis,
        status=str(status),
        touchpoint=row.touchpoint,
        method=row.method,
        given_at=as_utc(row.granted_at) or as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        withdrawn_at=as_utc(row.withdrawn_at),
        withdrawable=row.basis == LawfulBasis.CONSENT.value
        and status in (BasisStatus.GRANTED, BasisStatus.PENDING_CONFIRMATION),
        excluded=tuple(row.excluded_fields.split(",")) if row.excluded_fields else (),
    )


_LISTED_ACCESS = or_(
    audit_events.c.action == str(AuditAction.LOOKUP),
    and_(
        audit_events.c.action.in_([str(a) for a in ACCESS_KINDS if a != AuditAction.LOOKUP]),
        audit_events.c.actor_type == "client",
    ),
)


async def _display_names(conn: AsyncConnection, reads: Sequence[Any]) -> dict[str, str]:
    """The display names of the clients in the access log that have one."""
    names = sorted({row.actor_id for row in reads if row.actor_type == "client"})
    if not names:
        return {}
    rows = await conn.execute(
        select(clients.c.name, clients.c.display_name)
        .where(clients.c.name.in_(names))
        .where(clients.c.display_name.is_not(None))
    )
    return {row.name: row.display_name for row in rows}


def _access_entry(ctx: VaultContext, row: Any, shown: dict[str, str]) -> AccessEntry:
    purpose = ctx.catalogue.get(row.purpose) if row.purpose else None
    return AccessEntry(
        at=as_utc(row.at),
        client=row.actor_id,
        client_display=shown.get(row.actor_id) if row.actor_type == "client" else None,
        actor_type=row.actor_type,
        purpose=row.purpose,
        title_de=purpose.title_de if purpose else None,
        title_en=purpose.title_en if purpose else None,
        fields=[f for f in (row.fields or "").split(",") if f],
        decision=row.decision,
        reason=row.reason,
        kind=ACCESS_KINDS[AuditAction(row.action)],
    )


async def my_data(
    ctx: VaultContext,
    actor: Actor,
    subject_id: str,
    *,
    restriction: identity.Restriction | None = None,
) -> SelfView:
    """Everything the privacy centre shows a signed-in subject: contact data, consents with
    where and when they were given, and which internal system accessed the data (allowed
    or denied, from the audit trail: `ACCESS_KINDS`). Audited as a self-read in the same
    transaction.

    For a session under `restriction` (opened through an e-mail address whose change is
    not confirmed, `vault.subjects.identity`) only the consents' titles and statuses: no contact
    value is decrypted, and neither the access log nor anything else is read."""
    now = ctx.clock.now()
    async with audited_read(
        ctx, actor, AuditAction.SELF_CONTACT_READ, at=now, subject_id=subject_id
    ) as read:  # data that fails its integrity check: an audited refusal (vault.subjects.integrity)
        conn = read.conn
        subject = await load_subject(conn, subject_id)
        if subject.status == SubjectStatus.ERASED:
            raise NotFound("the subject's data was erased")
        contact = {} if restriction else decrypt_fields(ctx, subject, _READ_FIELDS)
        rows = (
            await conn.execute(
                select(consents_table)
                .where(consents_table.c.subject_id == subject_id)
                .where(consents_table.c.status != BasisStatus.SUPERSEDED)
                .order_by(consents_table.c.created_at.desc())
            )
        ).all()
        reads = (
            []
            if restriction
            else (
                await conn.execute(
                    select(audit_events)
                    .where(audit_events.c.subject_id == subject_id)
                    .where(_LISTED_ACCESS)
                    .order_by(audit_events.c.seq.desc())
                    .limit(ACCESS_LOG_LIMIT)
                )
            ).all()
        )
        shown = await _display_names(conn, reads)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SELF_CONTACT_READ,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            fields=sorted(contact),
            detail={"restricted": restriction.reason} if restriction else None,
        )
    return SelfView(
        subject_id=subject_id,
        status=subject.status,
        contact=contact,
        consents=[_consent_view(ctx, r, now) for r in rows],
        access_log=[_access_entry(ctx, r, shown) for r in reads],
        restriction=restriction,
    )


async def withdraw_consent(
    ctx: VaultContext, actor: Actor, subject_id: str, consent_id: str
) -> consents.BasisRecord:
    """Withdraw one of the subject's own consents, effective at once (Art. 7(3)).

    Someone else's (or an unknown) consent id is `NotFound`; a contract or legal-obligation
    basis cannot be ended here (`Conflict`): that takes an objection, restriction or
    erasure request."""
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(consents_table.c.basis)
                .where(consents_table.c.id == consent_id)
                .where(consents_table.c.subject_id == subject_id)
            )
        ).first()
    if row is None:
        raise NotFound("no such consent for this subject")
    if row.basis != LawfulBasis.CONSENT.value:
        raise Conflict(
            "only a consent can be withdrawn here; a contract or legal obligation is ended "
            "by a request (objection, restriction or erasure)"
        )
    return await consents.withdraw(ctx, actor, subject_id, consent_id)
