"""The contact history (Kontaktverlauf, issue 21 item 6): every contact made with a
customer, outbound (it reserved points) and inbound (the customer called or replied, 0
points), as recorded in `contacts` by lookups and `POST /v1/contacts`.

Three readers, each audited in the transaction that reads:
- a CRM client (`client_page`): one customer's contacts for the purposes the client may
  use (default deny: a contact for another purpose, or one recorded without a purpose, is
  not shown to it), newest first, one bounded page at a time;
- the customer (`for_subject`): all their contacts, "who contacted me, how, why";
- the export (`rows_in`, inside the export's own audited transaction).

A contact record holds no contact data (ids, brand, channel, type, purpose, touchpoint,
points and the client's name), so nothing here opens a ciphertext.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.access.lookup import LookupNotFound
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput, InvariantViolation
from vault.outreach.followups import MAX_PAGE
from vault.outreach.page_cursor import decode_cursor, encode_cursor
from vault.storage.outreach_tables import contacts
from vault.storage.tables import subjects
from vault.subjects.decision import DenyReason
from vault.subjects.integrity import audited_attempt

#: How many contacts the customer's own view shows (newest first); the export lists all.
SELF_VIEW_LIMIT = 200


@dataclass(frozen=True, slots=True)
class ContactEntry:
    """One contact made: when, by which system, for which brand and purpose, how."""

    id: str
    at: datetime
    direction: str
    brand: str
    channel: str
    type: str
    priority: str
    points: float
    purpose: str | None
    touchpoint: str | None
    client: str | None


@dataclass(frozen=True, slots=True)
class ContactHistoryPage:
    items: list[ContactEntry]
    next_cursor: str | None


def _entry(row: Any) -> ContactEntry:
    at = as_utc(row.at)
    if at is None:
        raise InvariantViolation("a contact without its time")
    return ContactEntry(
        id=row.id,
        at=at,
        direction=row.direction,
        brand=row.brand,
        channel=row.channel,
        type=row.type,
        priority=row.priority,
        points=row.points_tenths / 10,
        purpose=row.purpose,
        touchpoint=row.touchpoint,
        client=row.client,
    )


def _newest_first(subject_id: str) -> Any:
    return (
        select(contacts)
        .where(contacts.c.subject_id == subject_id)
        .order_by(contacts.c.at.desc(), contacts.c.id.desc())
    )


async def client_page(
    ctx: Any,
    actor: Actor,
    client_purposes: frozenset[str],
    subject_id: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> ContactHistoryPage:
    """One customer's contacts for the client's purposes, newest first. Raises
    `InvalidInput` (limit, cursor) or `LookupNotFound` (no such subject, the refusal
    audited)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("bad limit", {"limit": f"must be 1 to {MAX_PAGE}"})
    after = decode_cursor(cursor) if cursor is not None else None
    now = ctx.clock.now()
    purposes = sorted(client_purposes)
    async with audited_attempt(
        ctx,
        actor,
        AuditAction.CONTACT_HISTORY_READ,
        at=now,
        subject_id=subject_id,
        not_found=DenyReason.SUBJECT_NOT_FOUND.value,
    ) as attempt:
        conn = attempt.conn
        known = (
            await conn.execute(select(subjects.c.id).where(subjects.c.id == subject_id))
        ).scalar_one_or_none()
        if known is None:  # answered 404 with the reason subject_not_found
            raise LookupNotFound("no such subject")
        query = _newest_first(subject_id).where(contacts.c.purpose.in_(purposes)).limit(limit + 1)
        if after is not None:
            query = query.where(
                or_(
                    contacts.c.at < after[0],
                    and_(contacts.c.at == after[0], contacts.c.id < after[1]),
                )
            )
        rows = (await conn.execute(query)).all() if purposes else []
        items = [_entry(r) for r in rows[:limit]]
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CONTACT_HISTORY_READ,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            detail={"count": len(items), "page": cursor is not None},
        )
    more = len(rows) > limit
    return ContactHistoryPage(
        items=items,
        next_cursor=encode_cursor(items[-1].at, items[-1].id) if more else None,
    )


async def for_subject(ctx: Any, actor: Actor, subject_id: str) -> list[ContactEntry]:
    """The customer's own contact history, newest first (bounded); audited."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = (await conn.execute(_newest_first(subject_id).limit(SELF_VIEW_LIMIT))).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SELF_CONTACT_HISTORY_READ,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            detail={"count": len(rows)},
        )
    return [_entry(r) for r in rows]


async def rows_in(conn: AsyncConnection, subject_id: str) -> list[ContactEntry]:
    """Every contact of the subject, newest first, inside the caller's audited transaction
    (the export's)."""
    return [_entry(r) for r in (await conn.execute(_newest_first(subject_id))).all()]
