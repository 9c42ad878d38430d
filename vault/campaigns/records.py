"""Campaign records: what a marketer plans, and the states it goes through.

A campaign names a brand, a communication type and channel (which must fit its purpose,
like an announced contact: `fit_contact`), a priority of the rules with a numeric rank
within it, a send window and an audience. Its points per customer and its arbitration
order (`order_key`: lower is served first) are fixed when it is created, so bookings made
under it compare without re-reading the rules. States: draft -> booked -> sent, or
cancelled; only a draft's audience may change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.catalogue.contact_pressure import fit_contact
from vault.clock import as_utc
from vault.errors import AccessDenied, Conflict, InvalidInput, NotFound
from vault.outreach.basket import grant_denial
from vault.storage.campaign_tables import campaigns

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Ranks within one priority: 1 is served first.
MAX_RANK = 9999


class CampaignState(StrEnum):
    DRAFT = "draft"
    BOOKED = "booked"
    SENT = "sent"
    CANCELLED = "cancelled"


class AudienceKind(StrEnum):
    #: Uploaded subject ids or external references.
    LIST = "list"
    #: Everyone with a basis for the purpose when the campaign is booked.
    BASIS = "basis"


@dataclass(frozen=True, slots=True)
class CampaignDraft:
    """A campaign as a marketer submits it (channel and type default to the purpose's)."""

    name: str
    brand: str
    purpose: str
    window_start: datetime
    window_end: datetime
    channel: str | None = None
    type: str | None = None
    priority: str = "normal"
    rank: int = 1
    touchpoint: str | None = None
    audience_kind: AudienceKind = AudienceKind.LIST


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    brand: str
    type: str
    channel: str
    priority: str
    rank: int
    order_key: int
    purpose: str
    touchpoint: str | None
    window_start: datetime
    window_end: datetime
    month: str
    audience_kind: str
    owner: str
    state: str
    created_at: datetime
    updated_at: datetime


class CampaignNotFound(NotFound):
    """No campaign with that id."""


class CampaignStateConflict(Conflict):
    """The campaign is not in a state that allows the change (e.g. booking a sent one)."""


def order_key(ctx: VaultContext, priority: str, rank: int) -> int:
    """Arbitration order: the priority's precedence, then the rank within it."""
    return ctx.pressure_rules.precedence(priority) * (MAX_RANK + 1) + rank


_TIMES = frozenset({"window_start", "window_end", "created_at", "updated_at"})


def from_row(row: object) -> Campaign:
    """A stored campaign, its times in UTC (SQLite hands back naive ones)."""
    return Campaign(
        **{
            f: as_utc(getattr(row, f)) if f in _TIMES else getattr(row, f)
            for f in Campaign.__dataclass_fields__
        }
    )


async def create(
    ctx: VaultContext, actor: Actor, client_purposes: frozenset[str], draft: CampaignDraft
) -> Campaign:
    """Store a draft campaign owned by `actor`; audited. Raises `AccessDenied` for a
    priority or type the rules do not grant the client, `InvalidInput` for an
    unknown purpose, brand, channel, type or priority, a window that ends before it starts
    or spans two basket months."""
    rules = ctx.pressure_rules
    purpose = ctx.catalogue.get(draft.purpose)
    if purpose is None:
        raise InvalidInput("unknown purpose", {"purpose": "is not in the catalogue"})
    channel, type = fit_contact(
        rules, ctx.touchpoints, purpose, brand=draft.brand, channel=draft.channel,
        type=draft.type, priority=draft.priority, touchpoint=draft.touchpoint,
    )  # fmt: skip
    if not 1 <= draft.rank <= MAX_RANK:
        raise InvalidInput("rank out of range", {"rank": f"must be 1..{MAX_RANK}"})
    if draft.window_end <= draft.window_start:
        raise InvalidInput("empty send window", {"window_end": "must be after window_start"})
    month = rules.month_of(draft.window_start)
    bounds = rules.month_bounds(month)
    if bounds is not None and draft.window_end > bounds[1]:
        raise InvalidInput(
            "the send window spans two basket months",
            {"window_end": "must be within the basket month of window_start"},
        )
    denial = grant_denial(
        rules, client=actor.id, client_purposes=client_purposes, type=type,
        priority=draft.priority,
    )  # fmt: skip
    if denial is not None:
        # The rules grant priorities and the calamity type to clients: a refusal is a
        # question of rights (403), not of a well-formed request.
        raise AccessDenied(str(denial.reason), "priority or type not granted to this client")
    now = ctx.clock.now()
    values = {
        "id": str(uuid.uuid4()), "name": draft.name, "brand": draft.brand, "type": type,
        "channel": channel, "priority": draft.priority, "rank": draft.rank,
        "order_key": order_key(ctx, draft.priority, draft.rank), "purpose": draft.purpose,
        "touchpoint": draft.touchpoint, "window_start": draft.window_start,
        "window_end": draft.window_end, "month": month,
        "audience_kind": str(draft.audience_kind), "owner": actor.id,
        "state": str(CampaignState.DRAFT), "created_at": now, "updated_at": now,
    }  # fmt: skip
    async with ctx.transaction() as conn:
        await conn.execute(insert(campaigns).values(**values))
        await audit.record(
            conn, at=now, actor=actor, action=AuditAction.CAMPAIGN_CREATE,
            decision=Decision.ALLOW, purpose=draft.purpose,
            detail={"campaign": {"id": values["id"], "month": month, "priority": draft.priority}},
        )  # fmt: skip
    return Campaign(**values)  # type: ignore[arg-type]


async def load(conn: AsyncConnection, campaign_id: str, *, lock: bool = False) -> Campaign:
    """The campaign (row-locked with `lock`); raises `CampaignNotFound`."""
    stmt = select(campaigns).where(campaigns.c.id == campaign_id)
    row = (await conn.execute(stmt.with_for_update() if lock else stmt)).first()
    if row is None:
        raise CampaignNotFound("no such campaign")
    return from_row(row)


async def get(ctx: VaultContext, campaign_id: str) -> Campaign:
    async with ctx.transaction() as conn:
        return await load(conn, campaign_id)


async def list_campaigns(
    ctx: VaultContext, *, month: str | None = None, state: str | None = None
) -> list[Campaign]:
    """Campaigns, optionally of one basket month and state, in arbitration order."""
    stmt = select(campaigns).order_by(campaigns.c.month, campaigns.c.order_key, campaigns.c.id)
    if month is not None:
        stmt = stmt.where(campaigns.c.month == month)
    if state is not None:
        stmt = stmt.where(campaigns.c.state == state)
    async with ctx.transaction() as conn:
        return [from_row(r) for r in (await conn.execute(stmt)).all()]
