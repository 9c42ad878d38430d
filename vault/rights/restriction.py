"""Restriction of processing (Art. 18) and objections (Art. 21): to direct marketing
(Art. 21(2)-(3)) and to processing on legitimate interests (Art. 21(1)).

A restricted subject's data is only stored: every purpose-checked lookup denies with
`subject_restricted`, except for legal-obligation purposes (`vault.subjects.decision.decide`).

An objection to direct marketing is immediate and absolute: every basis of an editorial or
commercial purpose ends at once (consents `withdrawn`, other bases `ended`, history
`objection`) and `subjects.marketing_objection_at` is set. From then on
`vault.bases.consents.record_basis` refuses new marketing bases for the subject, unless the
evidence shows a fresh explicit opt-in by the subject itself (`explicit=True`), which
clears the objection.

An objection to processing on legitimate interests (Art. 21(1)) is not absolute: the
controller may go on where it demonstrates compelling legitimate grounds. It arrives as a
request (`legitimate_interest_objection`) naming the purposes, which a DPO decides: approved,
`object_to_legitimate_interest_in` ends those purposes' legitimate-interest bases; rejected,
the reason records the compelling grounds.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision, action_for
from vault.bases.ending import EndedBasis, end_live_bases
from vault.catalogue.purposes import LawfulBasis, is_direct_marketing
from vault.errors import Conflict
from vault.recipients import events as outbox
from vault.rights.free_text import clean_text
from vault.storage.tables import subjects
from vault.subjects.store import SubjectStatus, decrypt_fields, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def restrict_in(conn: AsyncConnection, actor: Actor, row: Row[Any], now: datetime) -> bool:
    """Restrict the subject inside the caller's transaction; False if it already was."""
    if row.status == SubjectStatus.ERASED:
        raise Conflict("the subject was erased")
    if row.status == SubjectStatus.RESTRICTED:
        return False
    await conn.execute(
        update(subjects)
        .where(subjects.c.id == row.id)
        .values(status=SubjectStatus.RESTRICTED, updated_at=now)
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action_for(actor, "subject:restrict"),
        decision=Decision.ALLOW,
        subject_id=row.id,
    )
    await outbox.emit(conn, outbox.EventType.SUBJECT_RESTRICTED, subject_id=row.id, at=now)
    return True


async def restrict(ctx: VaultContext, actor: Actor, subject_id: str) -> None:
    """Restrict processing of the subject's data (Art. 18).

    Raises `NotFound`, or `Conflict` when the subject is erased or already restricted.
    """
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await load_subject(conn, subject_id, for_update=True)
        if not await restrict_in(conn, actor, row, now):
            raise Conflict("processing of the subject's data is already restricted")


async def lift_restriction(
    ctx: VaultContext, actor: Actor, subject_id: str, reason: str | None = None
) -> bool:
    """End a restriction (Art. 18(3)): the subject is active again, and is told.

    Art. 18(3) asks that the subject be informed before the restriction is lifted: when an
    e-mail address is stored, the notice (German and English, with the DPO's reason) goes
    out before the change commits, so a failing mailer lifts nothing; the mail is audited
    (`system:subject:restriction_lifted_mail`, the field name only). Returns whether the
    subject was mailed (False: no address stored, tell them by letter).

    Raises `NotFound`, `InvalidInput` for a reason that is too long, or `Conflict` when
    the subject is not restricted.
    """
    text = clean_text(reason, "reason", required=False)
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await load_subject(conn, subject_id, for_update=True)
        if row.status != SubjectStatus.RESTRICTED:
            raise Conflict("processing of the subject's data is not restricted")
        await conn.execute(
            update(subjects)
            .where(subjects.c.id == subject_id)
            .values(status=SubjectStatus.ACTIVE, updated_at=now)
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_SUBJECT_LIFT_RESTRICTION,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            detail={"reason_given": bool(text)},
        )
        await outbox.emit(
            conn, outbox.EventType.SUBJECT_RESTRICTION_LIFTED, subject_id=subject_id, at=now
        )
        address = None
        if row.wrapped_dek is not None:
            address = decrypt_fields(ctx, row, ("email",)).get("email")
        if not address:
            return False
        await audit.record(
            conn,
            at=now,
            actor=audit.SYSTEM,
            action=AuditAction.RESTRICTION_LIFTED_MAIL,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            fields=["email"],
        )
        await mail_outbox.queue(
            ctx,
            conn,
            lift_notice(ctx, address, text),
            kind="restriction_lifted",
            subject_id=subject_id,
        )
    return True


_LIFT_SUBJECT = "Einschränkung der Verarbeitung endet / The restriction of processing ends"
_LIFT_BODY = """(English below)

Guten Tag,

Sie hatten verlangt, die Verarbeitung Ihrer Daten einzuschränken (Art. 18 DSGVO). Diese
Einschränkung heben wir auf; danach verarbeiten wir Ihre Daten wieder für die Zwecke, für
die Sie eingewilligt haben oder für die eine andere Rechtsgrundlage besteht.

Grund: {reason_de}

Sie können der Verarbeitung jederzeit widersprechen oder erneut eine Einschränkung verlangen.

----------------------------------------------------------------------

Hello,

you asked us to restrict the processing of your data (Art. 18 GDPR). We are lifting this
restriction; from then on we process your data again for the purposes you consented to or
for which another lawful basis exists.

Reason: {reason_en}

You can object to the processing at any time or ask for a restriction again.
"""


def lift_notice(ctx: VaultContext, address: str, reason: str | None) -> EmailMessage:
    """The notice that a restriction ends (Art. 18(3)), in German and English."""
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = _LIFT_SUBJECT
    msg.set_content(
        _LIFT_BODY.format(
            reason_de=reason or "Die Voraussetzungen der Einschränkung bestehen nicht mehr.",
            reason_en=reason or "The grounds for the restriction no longer apply.",
        )
    )
    msg["Content-Language"] = "de, en"
    return msg


async def object_in(
    ctx: VaultContext, conn: AsyncConnection, actor: Actor, row: Row[Any], now: datetime
) -> list[EndedBasis]:
    """Record an objection to direct marketing inside the caller's transaction."""
    if row.status == SubjectStatus.ERASED:
        raise Conflict("the subject was erased")

    def marketing(basis_row: Any) -> bool:
        purpose = ctx.catalogue.get(basis_row.purpose)
        return purpose is not None and is_direct_marketing(purpose)

    ended = await end_live_bases(
        conn, actor=actor, subject_id=row.id, now=now, event="objection", which=marketing
    )
    await conn.execute(
        update(subjects)
        .where(subjects.c.id == row.id)
        .values(marketing_objection_at=now, updated_at=now)
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action_for(actor, "subject:object"),
        decision=Decision.ALLOW,
        subject_id=row.id,
        detail={
            "ended": [e.id for e in ended],
            "purposes": sorted({e.purpose for e in ended}),
        },
    )
    # The purposes objected to: the direct-marketing ones the subject has a basis for.
    objected = [
        p for p in await outbox.subject_purposes(conn, row.id) if _is_marketing_purpose(ctx, p)
    ]
    await outbox.emit(
        conn, outbox.EventType.SUBJECT_OBJECTED, subject_id=row.id, purposes=objected, at=now
    )
    return ended


async def object_to_legitimate_interest_in(
    conn: AsyncConnection, actor: Actor, row: Row[Any], purposes: list[str], now: datetime
) -> list[EndedBasis]:
    """Uphold an Art. 21(1) objection inside the caller's transaction: the subject's live
    legitimate-interest bases of `purposes` end (history `objection`), so lookups for them
    are denied from now on.

    Called when a DPO approves the objection request, i.e. found no compelling legitimate
    grounds that override the subject's interests; a DPO who finds such grounds rejects the
    request with them as the reason instead, and nothing ends.
    """
    if row.status == SubjectStatus.ERASED:
        raise Conflict("the subject was erased")
    wanted = set(purposes)

    def objected(basis_row: Any) -> bool:
        return (
            basis_row.basis == LawfulBasis.LEGITIMATE_INTEREST.value and basis_row.purpose in wanted
        )

    ended = await end_live_bases(
        conn, actor=actor, subject_id=row.id, now=now, event="objection", which=objected
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action_for(actor, "subject:object"),
        decision=Decision.ALLOW,
        subject_id=row.id,
        detail={
            "article": "21(1)",
            "ended": [e.id for e in ended],
            "purposes": sorted(wanted),
        },
    )
    await outbox.emit(
        conn, outbox.EventType.SUBJECT_OBJECTED, subject_id=row.id, purposes=sorted(wanted), at=now
    )
    return ended


def _is_marketing_purpose(ctx: VaultContext, purpose_id: str) -> bool:
    purpose = ctx.catalogue.get(purpose_id)
    return purpose is not None and is_direct_marketing(purpose)
