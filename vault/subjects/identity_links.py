"""The old address's link in an identity-change notice (security finding 1): reading what the
link is about, confirming the change, or objecting to it ("this was not me").

Split from `identity`, which records the change and sends the notice: the link is the only
way in for someone who is no longer signed in, so it is checked on its own here: unknown,
expired and used links all get the same answer, and nothing in it names an address.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.errors import Conflict, NotFound
from vault.storage.rights_tables import identity_changes as changes
from vault.subjects.identity import (
    _TOKEN_MAX,
    ChangeRecord,
    ChangeStatus,
    NoticeView,
    _as_utc,
    _effective,
    _legacy_token_hash,
    _open,
    _records,
    _settle,
    _token_hash,
    end_sessions_in,
)
from vault.subjects.identity_notice import LINK_VALIDITY

if TYPE_CHECKING:
    from vault.context import VaultContext


async def _by_token(conn: AsyncConnection, ctx: VaultContext, token: str) -> list[Row[Any]]:
    if not isinstance(token, str) or not token or len(token) > _TOKEN_MAX:
        return []
    return list(
        (
            await conn.execute(
                select(changes)
                .where(
                    changes.c.token_hash.in_(
                        (_token_hash(ctx, token), _legacy_token_hash(ctx, token))
                    )
                )
                .order_by(changes.c.ordinal)
                .with_for_update()
            )
        ).all()
    )


def _usable(rows: Sequence[Row[Any]], now: datetime) -> list[Row[Any]]:
    """The changes a link may still confirm or object to: pending, link not expired."""
    return [
        r
        for r in rows
        if r.status == ChangeStatus.PENDING and _as_utc(r.changed_at) + LINK_VALIDITY > now
    ]


_UNUSABLE = "the link is unknown, has expired or was used already"


async def peek_notice(ctx: VaultContext, token: str) -> NoticeView:
    """What a still usable link is about (for its page); `NotFound` otherwise."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = _usable(await _by_token(conn, ctx, token), now)
    if not rows:
        raise NotFound(_UNUSABLE)
    return NoticeView(
        subject_id=rows[0].subject_id,
        kinds=[r.kind for r in rows],
        changed_at=_as_utc(rows[0].changed_at),
        cooling_off_until=_as_utc(rows[0].cooling_off_until),
        status=_effective(rows[0], now),
    )


async def confirm_by_token(ctx: VaultContext, actor: Actor, token: str) -> list[ChangeRecord]:
    """The old address confirms the change: sessions through the new address are no longer
    restricted. Refused (`Conflict`) while an earlier e-mail change is still open: then
    the old address was itself not yet trusted, and a DPO decides."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = _usable(await _by_token(conn, ctx, token), now)
        if not rows:
            raise NotFound(_UNUSABLE)
        earlier = (
            await conn.execute(
                select(changes)
                .where(changes.c.subject_id == rows[0].subject_id)
                .where(changes.c.kind == "email")
                .where(changes.c.ordinal < min(r.ordinal for r in rows))
                .where(changes.c.status != ChangeStatus.CONFIRMED.value)
            )
        ).all()
        if any(r.kind == "email" for r in rows) and any(_open(r, now) for r in earlier):
            raise Conflict(
                "an earlier change of the e-mail address is still open; our data protection "
                "team has to confirm this one"
            )
        ids = [r.id for r in rows]
        await _settle(conn, ids, ChangeStatus.CONFIRMED, actor, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SUBJECT_IDENTITY_CONFIRM,
            decision=Decision.ALLOW,
            subject_id=rows[0].subject_id,
            fields=[r.kind for r in rows],
            detail={"change_ids": ids},
        )
    return await _records(ctx, ids)


async def record_objection(ctx: VaultContext, actor: Actor, token: str) -> tuple[str, list[str]]:
    """The old address objects ("this was not me"), the protection half: every session
    ends and the changes are marked objected (sessions through the disputed address stay
    restricted until a DPO approves). Returns the subject and the objected changes still
    without their restriction request, which `vault.rights.identity_objection` opens next
    (a retry of the same link gets them again, so a request that failed to open is
    completed); `NotFound` for a link that is unknown, expired, or used up."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = await _by_token(conn, ctx, token)
        usable = _usable(rows, now)
        if usable:
            ids = [r.id for r in usable]
            await _settle(conn, ids, ChangeStatus.OBJECTED, actor, now, keep_token=True)
            ended = await end_sessions_in(conn, usable[0].subject_id, now)
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.SUBJECT_IDENTITY_OBJECT,
                decision=Decision.ALLOW,
                subject_id=usable[0].subject_id,
                fields=[r.kind for r in usable],
                detail={"change_ids": ids, "sessions_ended": ended},
            )
        else:
            usable = [r for r in rows if r.status == ChangeStatus.OBJECTED and not r.request_id]
            ids = [r.id for r in usable]
        if not usable:
            raise NotFound(_UNUSABLE)
    return usable[0].subject_id, ids


async def attach_request(
    ctx: VaultContext, change_ids: list[str], request_id: str
) -> list[ChangeRecord]:
    """Link objected changes to the request opened for them; their link stops working."""
    async with ctx.transaction() as conn:
        await conn.execute(
            update(changes)
            .where(changes.c.id.in_(change_ids))
            .values(request_id=request_id, token_hash=None)
        )
    return await _records(ctx, change_ids)
