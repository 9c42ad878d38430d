"""The touchpoint report (issue 21 item 7): per touchpoint of the register, over a period of
basket months, what happened there, so the team sees which touchpoints earn trust and
which lose it.

Per touchpoint (the register's id; `none` for records without a touchpoint, `unregistered`
for ids the register does not hold):

- `consents_given`: consents granted there in the period;
- `withdrawals`: consents given there and withdrawn in the period;
- `objections`: customers who objected to marketing in the period after giving a consent
  there (a customer with consents at two touchpoints counts at both);
- `contacts_made` and `contacts_inbound`: contacts recorded there in the period's basket
  months, made by us (outbound) or started by the customer;
- `followups_kept` and `followups_missed`: follow-ups agreed there, kept in the period or
  whose window ended unused in it (the rule of `vault.outreach.followups.report`);
- `complaint_followups`: follow-ups agreed there in the period about a complaint. The
  vault records no complaints of its own; this is the one complaint signal it holds,
  a lower bound, and named as what it is.

Every measure counts events, with the customers behind them beside, per basket month and
for the whole period, so that the masking can show a count only when it stems from at
least k customers and no month inside the period is thin (`vault.campaigns.masking`).
Counts only, never a subject id; the read is audited in the transaction that reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, literal, or_, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.campaigns.masking import Tally
from vault.campaigns.reports import month_range, months_back
from vault.catalogue.touchpoints import Touchpoint
from vault.errors import InvalidInput
from vault.storage.outreach_tables import contacts, followups
from vault.storage.tables import consents, subjects
from vault.subjects.decision import BasisStatus

if TYPE_CHECKING:
    from vault.context import VaultContext

MEASURES = (
    "consents_given",
    "withdrawals",
    "objections",
    "contacts_made",
    "contacts_inbound",
    "followups_kept",
    "followups_missed",
    "complaint_followups",
)
#: The pseudo touchpoints: records without one, and ids the register does not hold.
NONE, UNREGISTERED = "none", "unregistered"
MAX_MONTHS = 12
#: Where a measure's period starts and ends, and which basket months it spans.
Span = tuple[datetime, datetime, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class TouchpointRow:
    key: str
    #: The register entry; None for `none` and `unregistered`.
    touchpoint: Touchpoint | None
    #: Per measure: the period's tally and one per basket month, oldest first.
    period: dict[str, Tally]
    monthly: dict[str, tuple[Tally, ...]]


@dataclass(frozen=True, slots=True)
class TouchpointReport:
    month: str
    first_month: str
    months: int
    #: Direct touchpoints first, then indirect, then `none` and `unregistered`.
    rows: list[TouchpointRow]


def _key(col: Any, ids: list[str]) -> Any:
    return case(
        (col.is_(None), literal(NONE)), (col.in_(ids), col), else_=literal(UNREGISTERED)
    ).label("tp")


def _queries(ctx: VaultContext, ids: list[str]) -> dict[str, Callable[[Span], Any]]:
    """Per measure: the SELECT (touchpoint key, events, customers) for a span."""
    now = ctx.clock.now()

    def grouped(key_col: Any, subject: Any, count: Any, *where: Any) -> Any:
        key = _key(key_col, ids)
        return select(key, count, func.count(func.distinct(subject))).where(*where).group_by(key)

    def between(col: Any, span: Span) -> Any:
        return and_(col >= span[0], col < span[1])

    def contact_q(direction: str) -> Callable[[Span], Any]:
        return lambda s: grouped(
            contacts.c.touchpoint, contacts.c.subject_id, func.count(),
            contacts.c.month.in_(s[2]), contacts.c.direction == direction,
        )  # fmt: skip

    fu = followups.c
    missed = or_(fu.status == "missed", and_(fu.status == "open", fu.due_until <= now))
    objected = and_(
        subjects.c.marketing_objection_at.is_not(None),
        consents.c.subject_id == subjects.c.id,
        consents.c.status != BasisStatus.PENDING_CONFIRMATION.value,
        consents.c.created_at <= subjects.c.marketing_objection_at,
    )
    return {
        "consents_given": lambda s: grouped(
            consents.c.touchpoint,
            consents.c.subject_id,
            func.count(),
            between(consents.c.granted_at, s),
        ),  # fmt: skip
        "withdrawals": lambda s: grouped(
            consents.c.touchpoint,
            consents.c.subject_id,
            func.count(),
            consents.c.status == BasisStatus.WITHDRAWN.value,
            between(consents.c.withdrawn_at, s),
        ),  # fmt: skip
        # One objection per customer: the events are the customers.
        "objections": lambda s: grouped(
            consents.c.touchpoint,
            subjects.c.id,
            func.count(func.distinct(subjects.c.id)),
            objected,
            between(subjects.c.marketing_objection_at, s),
        ),  # fmt: skip
        "contacts_made": contact_q("outbound"),
        "contacts_inbound": contact_q("inbound"),
        "followups_kept": lambda s: grouped(
            fu.touchpoint,
            fu.subject_id,
            func.count(),
            fu.status == "kept",
            between(fu.closed_at, s),
        ),  # fmt: skip
        "followups_missed": lambda s: grouped(
            fu.touchpoint, fu.subject_id, func.count(), missed, between(fu.due_until, s)
        ),
        "complaint_followups": lambda s: grouped(
            fu.touchpoint,
            fu.subject_id,
            func.count(),
            fu.note == "complaint",
            between(fu.created_at, s),
        ),  # fmt: skip
    }


def period_months(month: str, months: int) -> list[str]:
    """The `months` basket months up to and including `month`, oldest first."""
    return [months_back(month, months - i) for i in range(months)]


async def touchpoint_report(
    ctx: VaultContext, actor: Actor, month: str, *, months: int = 1
) -> TouchpointReport:
    """The touchpoint report over the `months` basket months up to `month` (module
    docstring); audited. `InvalidInput` for a month that does not read YYYY-MM or a
    period longer than `MAX_MONTHS`."""
    month_range(ctx, month)
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput("bad months", {"months": f"must be 1 to {MAX_MONTHS}"})
    register = ctx.touchpoints.touchpoints
    ids = sorted(register)
    names = period_months(month, months)
    spans: list[Span] = []
    for m in names:
        bounds = ctx.pressure_rules.month_bounds(m) if m >= "0001-01" else None
        if bounds is not None:
            spans.append((bounds[0], bounds[1], (m,)))
    whole: Span | None = (spans[0][0], spans[-1][1], tuple(names)) if spans else None
    queries = _queries(ctx, ids)
    zero = Tally(0, 0)
    monthly: dict[tuple[str, str], list[Tally]] = {}
    period: dict[tuple[str, str], Tally] = {}
    async with ctx.transaction() as conn:
        for measure, build in queries.items():
            for i, span in enumerate(spans):
                for key, n, who in await conn.execute(build(span)):
                    cells = monthly.setdefault((str(key), measure), [zero] * len(spans))
                    cells[i] = Tally(int(n), int(who))
            if whole is not None:
                for key, n, who in await conn.execute(build(whole)):
                    period[(str(key), measure)] = Tally(int(n), int(who))
        await audit.record(
            conn, at=ctx.clock.now(), actor=actor, action=AuditAction.CAMPAIGN_REPORT,
            decision=Decision.ALLOW,
            detail={"report": {"name": "touchpoints", "month": month, "months": months}},
        )  # fmt: skip
    keys = [t.id for t in register.values() if t.kind == "direct"]
    keys += [t.id for t in register.values() if t.kind != "direct"]
    keys += [k for k in (NONE, UNREGISTERED) if any(k == key for key, _ in period)]
    empty = (zero,) * len(spans)
    rows = [
        TouchpointRow(
            key=key,
            touchpoint=register.get(key),
            period={m: period.get((key, m), zero) for m in MEASURES},
            monthly={m: tuple(monthly.get((key, m), empty)) for m in MEASURES},
        )  # fmt: skip
        for key in keys
    ]
    return TouchpointReport(month=month, first_month=names[0], months=months, rows=rows)
