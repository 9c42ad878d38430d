"""A campaign's forecast: how many of its audience it can reach, and why not the others.

Every member lands in the first of: missing basis (no live basis for the purpose, or an
objection to marketing), blocked by the basket (no room even after displacing campaigns
served later; for a booked campaign: its hold was blocked, displaced or released), blocked
by the customer's preferences (own monthly cap), blocked by quiet hours (quiet on the
campaign's channel at the window's start, the planned send time), else reachable. The
first two are counted in the database in one statement whatever the audience size; only
members who stated preferences are read row by row, since their rules are JSON. Counts
only. Every read is audited.

The reasons add up to the audience, so a marketer who sees all but one of them could
subtract: `cells` shows them as the reports are shown (`vault.campaigns.masking`: "< k"
below k, and shown cells `HIDDEN` beside a masked one until 2k are out of sight). A
campaign whose audience differs from another's by 1 to k - 1 members
(`audience.near_audience`) has every reason hidden: the two forecasts' difference would
be those few members' status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.campaigns.audience import has_basis, near_audience
from vault.campaigns.basket_holds import BLOCKED, DISPLACED, NO_BASIS, RELEASED, cost_tenths
from vault.campaigns.booking import fits_condition, members_with_budgets, resolve_basis
from vault.campaigns.masking import partition
from vault.campaigns.records import AudienceKind, Campaign, CampaignState, load
from vault.outreach import preferences
from vault.storage.campaign_tables import campaign_audience, campaign_bookings
from vault.storage.outreach_tables import contact_budgets, contact_preferences
from vault.subjects.decision import DenyReason

if TYPE_CHECKING:
    from vault.context import VaultContext

_BASIS = "missing_basis"
_BASKET = "blocked_by_basket"
_OK = "ok"


@dataclass(frozen=True, slots=True)
class Forecast:
    audience: int
    reachable: int
    blocked_by_basket: int
    blocked_by_preferences: int
    missing_basis: int
    blocked_by_quiet_hours: int
    #: The audience is near another campaign's (1 to k - 1 members apart): all hidden.
    near_audience: bool = False


#: The reasons a forecast sorts its audience into, in the order pages show them.
REASONS = (
    "reachable", "blocked_by_basket", "blocked_by_preferences", "blocked_by_quiet_hours",
    "missing_basis",
)  # fmt: skip


def cells(f: Forecast, k: int) -> dict[str, int | str]:
    """The counts a marketer may see: `audience` then `REASONS`, each a number, "< k" or
    `HIDDEN` (module docstring)."""
    total, parts = partition(
        f.audience, {r: getattr(f, r) for r in REASONS}, k, hide=f.near_audience
    )
    return {"audience": total, **parts}


async def forecast(ctx: VaultContext, actor: Actor, campaign_id: str) -> tuple[Campaign, Forecast]:
    """The forecast of one campaign now (see the module docstring); audited as a report
    read. A draft with a basis audience is forecast for everyone with a basis now."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        camp = await load(conn, campaign_id)
        # A basis audience is resolved as booking would, then rolled back.
        savepoint = await conn.begin_nested()
        if camp.state == CampaignState.DRAFT and camp.audience_kind == AudienceKind.BASIS:
            await resolve_basis(conn, camp, now)
        categories = _categories(ctx, camp, now)
        counts = {
            r[0]: int(r[1])
            for r in await conn.execute(
                select(categories.c.cat, func.count()).group_by(categories.c.cat)
            )
        }
        checked = await _preference_checks(conn, ctx, camp, categories)
        near = await near_audience(conn, camp.id, ctx.pressure_rules.report_min_count)
        await savepoint.rollback()
        await audit.record(
            conn, at=now, actor=actor, action=AuditAction.CAMPAIGN_REPORT,
            decision=Decision.ALLOW, purpose=camp.purpose,
            detail={"campaign": {"id": camp.id, "report": "forecast"}},
        )  # fmt: skip
    quiet = checked.get(DenyReason.CONTACT_QUIET_HOURS, 0)
    capped = checked.get(DenyReason.CONTACT_CAP_REACHED, 0)
    return camp, Forecast(
        audience=sum(counts.values()),
        reachable=counts.get(_OK, 0) - quiet - capped,
        blocked_by_basket=counts.get(_BASKET, 0),
        blocked_by_preferences=capped,
        missing_basis=counts.get(_BASIS, 0),
        blocked_by_quiet_hours=quiet,
        near_audience=near,
    )


async def audience_is_near(ctx: VaultContext, campaign_id: str) -> bool:
    """`audience.near_audience` for answers other than the forecast (a booking and its
    preview): a basis draft's audience is resolved as booking would, then rolled back."""
    async with ctx.transaction() as conn:
        camp = await load(conn, campaign_id)
        savepoint = await conn.begin_nested()
        if camp.state == CampaignState.DRAFT and camp.audience_kind == AudienceKind.BASIS:
            await resolve_basis(conn, camp, ctx.clock.now())
        near = await near_audience(conn, camp.id, ctx.pressure_rules.report_min_count)
        await savepoint.rollback()
    return near


def _categories(ctx: VaultContext, camp: Campaign, now: Any) -> Any:
    """Subquery (subject_id, used, cat) over the audience: basis and basket categories."""
    used = func.coalesce(contact_budgets.c.used_tenths, 0).label("used")
    member = campaign_audience.c.subject_id
    if camp.state == CampaignState.DRAFT:
        cat = case(
            (~has_basis(member, camp.purpose, camp.type, now), literal(_BASIS)),
            (~fits_condition(ctx, camp), literal(_BASKET)),
            else_=literal(_OK),
        )
        source = members_with_budgets(camp)
    else:
        b = campaign_bookings
        status = b.c.status
        cat = case(
            (status == NO_BASIS, literal(_BASIS)),
            (status.in_((BLOCKED, DISPLACED, RELEASED)), literal(_BASKET)),
            else_=literal(_OK),
        )
        source = members_with_budgets(camp).outerjoin(
            b, and_(b.c.campaign_id == camp.id, b.c.subject_id == member)
        )
    return (
        select(member.label("subject_id"), used, cat.label("cat"))
        .select_from(source)
        .where(campaign_audience.c.campaign_id == camp.id)
        .subquery()
    )


async def _preference_checks(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign, categories: Any
) -> dict[DenyReason, int]:
    """Of the members still reachable, those the customer's own preferences stop at the
    planned send time (the window's start): quiet hours on the channel, own cap."""
    rules = ctx.pressure_rules
    prio = rules.priorities[camp.priority]
    exempt = prio.unlimited or camp.type in rules.basket_exempt_types
    cost = cost_tenths(ctx, camp)
    out: dict[DenyReason, int] = {}
    rows = await conn.execute(
        select(contact_preferences, categories.c.used)
        .join(categories, categories.c.subject_id == contact_preferences.c.subject_id)
        .where(categories.c.cat == _OK)
    )
    for row in rows:
        verdict = preferences.check_contact(
            preferences.from_row(row), channel=camp.channel, type=camp.type,
            cap_exempt=exempt, used_tenths=int(row.used), cost_tenths=cost,
            now=camp.window_start,
        )  # fmt: skip
        if verdict.deny is not None:
            out[verdict.deny] = out.get(verdict.deny, 0) + 1
    return out
