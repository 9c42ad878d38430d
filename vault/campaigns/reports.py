"""Reports for tuning the contact-pressure method (issue 21 item 4): who hears too much from
us, who hears nothing, and who leaves after a contact.

- `basket_use`: the distribution of a basket month's use over the active customers in
  bands (none, under half, half to 80 %, 80 % to full, full), and the missed chances:
  customers with a live basis (for one purpose, or any) who were not contacted in the
  last N basket months.
- `opt_outs`: withdrawals, objections to marketing and erasures within N days after a
  contact of a basket month, by brand, type, channel, touchpoint and by how full the
  customer's basket was in that month; next to each, how many customers were contacted.

Counts of customers only, never a subject id; the API and console show each below k as
"< k" (`vault.campaigns.masking`). Every read is audited in the transaction that reads:
no event, no report. The contacted totals are counted in the database by group; only
the contacts of customers who opted out in the period are read row by row (to compare
each contact's time with the opt-out's), since the day arithmetic is not portable SQL.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, exists, func, literal, or_, select, union_all

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.tables import consents, subjects
from vault.subjects.decision import BasisStatus

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Basket-use bands, in order.
BANDS = ("none", "under_half", "half_to_80", "near_full", "full")
#: Opt-out kinds, in order.
OPT_OUTS = ("withdrawal", "objection", "erasure")
#: The groupings of the opt-out report.
DIMENSIONS = ("brand", "type", "channel", "touchpoint", "band")
MAX_MONTHS = 24
MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
MAX_DAYS = 365


@dataclass(frozen=True, slots=True)
class BasketUse:
    month: str
    basket: float
    customers: int
    bands: dict[str, int]
    #: Customers with a live basis but no outbound contact in the last `months` months.
    missed: int
    months: int
    purpose: str | None


@dataclass(frozen=True, slots=True)
class OptOutRow:
    dimension: str
    value: str
    contacted: int
    #: Customers who opted out (per kind) within `days` days after such a contact.
    opted_out: dict[str, int]


@dataclass(frozen=True, slots=True)
class OptOutFilters:
    brand: str | None = None
    type: str | None = None
    channel: str | None = None
    touchpoint: str | None = None


@dataclass(frozen=True, slots=True)
class OptOuts:
    month: str
    days: int
    rows: list[OptOutRow]


def month_range(ctx: VaultContext, month: str) -> tuple[datetime, datetime] | None:
    """The basket month's [start, end) instants; None for a month the calendar cannot hold
    (year 0, see `month_bounds`), in which nothing falls. `InvalidInput` naming `month`
    unless it reads YYYY-MM."""
    if not MONTH_RE.fullmatch(month):
        raise InvalidInput("bad month", {"month": "must be a basket month YYYY-MM"})
    return ctx.pressure_rules.month_bounds(month)


def months_back(month: str, n: int) -> str:
    """The basket month `n - 1` months before `month` (YYYY-MM): the first of n months."""
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) - (n - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def band_of(used: Any, basket: int) -> Any:
    """SQL: the basket-use band of `used` tenths against a basket of `basket` tenths."""
    return case(
        (used <= 0, literal("none")),
        (used * 2 < basket, literal("under_half")),
        (used * 10 < basket * 8, literal("half_to_80")),
        (used < basket, literal("near_full")),
        else_=literal("full"),
    )


async def basket_use(
    ctx: VaultContext, actor: Actor, month: str, *, months: int = 3, purpose: str | None = None
) -> BasketUse:
    """The basket-use distribution of `month` over the active customers, and the missed
    chances of the last `months` months (see the module docstring); audited. A purpose
    nobody has a basis for counts no missed chance (a filter, like a brand nobody uses)."""
    month_range(ctx, month)
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput("bad months", {"months": f"must be 1 to {MAX_MONTHS}"})
    now = ctx.clock.now()
    basket = ctx.pressure_rules.basket_tenths
    used = func.coalesce(contact_budgets.c.used_tenths, 0)
    band = band_of(used, basket).label("band")
    bands_q = (
        select(band, func.count())
        .select_from(
            subjects.outerjoin(
                contact_budgets,
                and_(
                    contact_budgets.c.subject_id == subjects.c.id,
                    contact_budgets.c.month == month,
                ),
            )
        )
        .where(subjects.c.status == "active")
        .group_by(band)
    )
    live = [
        consents.c.subject_id == subjects.c.id,
        consents.c.status.in_((BasisStatus.GRANTED.value, BasisStatus.ACTIVE.value)),
        or_(consents.c.expires_at.is_(None), consents.c.expires_at > now),
    ]
    if purpose is not None:
        live.append(consents.c.purpose == purpose)
    contacted = exists().where(
        contacts.c.subject_id == subjects.c.id,
        contacts.c.direction == "outbound",
        contacts.c.month >= months_back(month, months),
        contacts.c.month <= month,
    )
    missed_q = select(func.count()).where(
        subjects.c.status == "active",
        subjects.c.marketing_objection_at.is_(None),
        exists().where(*live),
        ~contacted,
    )
    async with ctx.transaction() as conn:
        bands = dict.fromkeys(BANDS, 0) | {
            str(r[0]): int(r[1]) for r in await conn.execute(bands_q)
        }
        missed = int((await conn.execute(missed_q)).scalar_one())
        await _audited(conn, ctx, actor, "basket_use", month, purpose)
    return BasketUse(
        month=month, basket=basket / 10, customers=sum(bands.values()), bands=bands,
        missed=missed, months=months, purpose=purpose,
    )  # fmt: skip


async def opt_outs(
    ctx: VaultContext,
    actor: Actor,
    month: str,
    *,
    days: int = 30,
    filters: OptOutFilters = OptOutFilters(),
) -> OptOuts:
    """Opt-outs within `days` days after the outbound contacts of `month` (narrowed by
    `filters`), by brand, type, channel, touchpoint and basket band; audited."""
    bounds = month_range(ctx, month)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput("bad days", {"days": f"must be 1 to {MAX_DAYS}"})
    basket = ctx.pressure_rules.basket_tenths
    used = func.coalesce(contact_budgets.c.used_tenths, 0)
    cols = {
        "brand": contacts.c.brand,
        "type": contacts.c.type,
        "channel": contacts.c.channel,
        "touchpoint": func.coalesce(contacts.c.touchpoint, literal("none")),
        "band": band_of(used, basket),
    }
    source = contacts.outerjoin(
        contact_budgets,
        and_(
            contact_budgets.c.subject_id == contacts.c.subject_id,
            contact_budgets.c.month == contacts.c.month,
        ),
    )
    where = [contacts.c.month == month, contacts.c.direction == "outbound"]
    for name, value in (
        ("brand", filters.brand),
        ("type", filters.type),
        ("channel", filters.channel),
        ("touchpoint", filters.touchpoint),
    ):
        if value is not None:
            where.append(getattr(contacts.c, name) == value)
    if bounds is None:
        async with ctx.transaction() as conn:
            await _audited(conn, ctx, actor, "opt_outs", month, None)
        return OptOuts(month=month, days=days, rows=[])
    start, end = bounds
    horizon = end + timedelta(days=days)
    events = _opt_out_events(start, horizon).subquery()
    async with ctx.transaction() as conn:
        contacted: dict[tuple[str, str], int] = {}
        for dim, col in cols.items():
            q = (
                select(col.label("v"), func.count(func.distinct(contacts.c.subject_id)))
                .select_from(source)
                .where(*where)
                .group_by(col)
            )
            for value, n in await conn.execute(q):
                contacted[(dim, str(value))] = int(n)
        # Contacts of customers who opted out between the month's start and the horizon.
        pairs = await conn.execute(
            select(
                contacts.c.subject_id,
                contacts.c.at,
                events.c.at.label("out_at"),
                events.c.kind,
                *(c.label(d) for d, c in cols.items()),
            )  # fmt: skip
            .select_from(source.join(events, events.c.subject_id == contacts.c.subject_id))
            .where(*where, events.c.at >= contacts.c.at)
        )
        who: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        window = timedelta(days=days)
        for row in pairs:
            if as_utc(row.out_at) >= as_utc(row.at) + window:
                continue
            for dim in DIMENSIONS:
                who[(dim, str(getattr(row, dim)), row.kind)].add(row.subject_id)
        await _audited(conn, ctx, actor, "opt_outs", month, None)
    rows = [
        OptOutRow(
            dimension=dim,
            value=value,
            contacted=n,
            opted_out={k: len(who.get((dim, value, k), ())) for k in OPT_OUTS},
        )  # fmt: skip
        for (dim, value), n in sorted(contacted.items(), key=_order)
    ]
    return OptOuts(month=month, days=days, rows=rows)


def _order(item: tuple[tuple[str, str], int]) -> tuple[int, str]:
    (dim, value), _ = item
    return DIMENSIONS.index(dim), value


def _opt_out_events(start: datetime, horizon: datetime) -> Any:
    """SELECT (subject_id, at, kind) of every withdrawal of a consent, objection to
    marketing and erasure in [start, horizon)."""
    withdrawals = select(
        consents.c.subject_id, consents.c.withdrawn_at.label("at"),
        literal("withdrawal").label("kind"),
    ).where(
        consents.c.status == BasisStatus.WITHDRAWN.value,
        consents.c.withdrawn_at >= start,
        consents.c.withdrawn_at < horizon,
    )  # fmt: skip
    objections = select(
        subjects.c.id.label("subject_id"), subjects.c.marketing_objection_at.label("at"),
        literal("objection").label("kind"),
    ).where(
        subjects.c.marketing_objection_at >= start, subjects.c.marketing_objection_at < horizon
    )  # fmt: skip
    erasures = select(
        subjects.c.id.label("subject_id"), subjects.c.erased_at.label("at"),
        literal("erasure").label("kind"),
    ).where(subjects.c.erased_at >= start, subjects.c.erased_at < horizon)  # fmt: skip
    return union_all(withdrawals, objections, erasures)


async def _audited(
    conn: Any, ctx: VaultContext, actor: Actor, report: str, month: str, purpose: str | None
) -> None:
    """Put a report read on the trail like every DPO read (in the reading transaction)."""
    await audit.record(
        conn, at=ctx.clock.now(), actor=actor, action=AuditAction.CAMPAIGN_REPORT,
        decision=Decision.ALLOW, purpose=purpose,
        detail={"report": {"name": report, "month": month}},
    )  # fmt: skip
