"""Who opted out after which contact: the counting behind the opt-out report
(`vault.campaigns.reports.opt_outs`), kept apart so that the report can count the same
month under every coarser combination of its filters and every window of `DAYS` from one
read of the pairs (`vault.campaigns.masking` rule 3).

- `count_contacted`: customers contacted in a month under some filters, per dimension and
  value, counted in the database by group;
- `opt_out_pairs`: the month's contacts of customers who opted out between the month's
  start and the longest window after its end, read row by row, since the day arithmetic
  is not portable SQL;
- `opted_out`: from those pairs, the customers per dimension, value, kind and window.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, literal, select, union_all

from vault.clock import as_utc
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.tables import consents, subjects
from vault.subjects.decision import BasisStatus

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Opt-out kinds, in order.
OPT_OUTS = ("withdrawal", "objection", "erasure")
#: The groupings of the opt-out report.
DIMENSIONS = ("brand", "type", "channel", "touchpoint", "band")
#: The windows an opt-out may be counted in: a fixed set, since free day counts would
#: let two answers differ by the opt-outs of one day.
DAYS = (7, 14, 30, 60, 90, 180, 365)


def band_of(used: Any, basket: int) -> Any:
    """SQL: the basket-use band of `used` tenths against a basket of `basket` tenths."""
    return case(
        (used <= 0, literal("none")),
        (used * 2 < basket, literal("under_half")),
        (used * 10 < basket * 8, literal("half_to_80")),
        (used < basket, literal("near_full")),
        else_=literal("full"),
    )


def source() -> Any:
    return contacts.outerjoin(
        contact_budgets,
        and_(
            contact_budgets.c.subject_id == contacts.c.subject_id,
            contact_budgets.c.month == contacts.c.month,
        ),
    )


def columns(ctx: VaultContext) -> dict[str, Any]:
    used = func.coalesce(contact_budgets.c.used_tenths, 0)
    return {
        "brand": contacts.c.brand,
        "type": contacts.c.type,
        "channel": contacts.c.channel,
        "touchpoint": func.coalesce(contacts.c.touchpoint, literal("none")),
        "band": band_of(used, ctx.pressure_rules.basket_tenths),
    }


async def count_contacted(
    conn: Any, ctx: VaultContext, month: str, given: dict[str, str]
) -> dict[tuple[str, str], int]:
    """Customers contacted in `month` under the filters `given`, per dimension and value."""
    where = [contacts.c.month == month, contacts.c.direction == "outbound"]
    where += [getattr(contacts.c, name) == value for name, value in given.items()]
    found: dict[tuple[str, str], int] = {}
    for dim, col in columns(ctx).items():
        q = (
            select(col.label("v"), func.count(func.distinct(contacts.c.subject_id)))
            .select_from(source())
            .where(*where)
            .group_by(col)
        )
        for value, n in await conn.execute(q):
            found[(dim, str(value))] = int(n)
    return found


async def opt_out_pairs(
    conn: Any, ctx: VaultContext, month: str, bounds: tuple[datetime, datetime]
) -> list[Any]:
    """The month's outbound contacts of customers who opted out between the month's start
    and the longest window after its end, each with the opt-out's time and kind."""
    start, end = bounds
    events = opt_out_events(start, end + timedelta(days=max(DAYS))).subquery()
    result = await conn.execute(
        select(
            contacts.c.subject_id,
            contacts.c.at,
            contacts.c.touchpoint.label("raw_touchpoint"),
            events.c.at.label("out_at"),
            events.c.kind,
            *(c.label(d) for d, c in columns(ctx).items()),
        )  # fmt: skip
        .select_from(source().join(events, events.c.subject_id == contacts.c.subject_id))
        .where(
            contacts.c.month == month,
            contacts.c.direction == "outbound",
            events.c.at >= contacts.c.at,
        )
    )
    return list(result)


def opted_out(pairs: list[Any], given: dict[str, str]) -> dict[tuple[str, str, str, int], int]:
    """Customers who opted out within each window of `DAYS` after a contact matching the
    filters `given`, per (dimension, value, kind, days)."""
    who: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
    for row in pairs:
        if any(
            (row.raw_touchpoint if name == "touchpoint" else getattr(row, name)) != value
            for name, value in given.items()
        ):
            continue
        after = as_utc(row.out_at) - as_utc(row.at)
        for d in DAYS:
            if after < timedelta(days=d):
                for dim in DIMENSIONS:
                    who[(dim, str(getattr(row, dim)), row.kind, d)].add(row.subject_id)
    return {key: len(ids) for key, ids in who.items()}


def opt_out_events(start: datetime, horizon: datetime) -> Any:
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
