"""Planning reports on both databases, against counts the test derives from its own seed:
basket use in bands and missed chances, opt-outs within N days after a contact by group,
and every read audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from vault.audit.events import Actor, AuditAction
from vault.campaigns import reports
from vault.errors import InvalidInput
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.tables import consents, subjects

MARKETER = Actor("client", "marketing")
MONTH = "2026-11"
DAY = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


async def seed_subjects(vault, n: int, **extra) -> list[str]:
    """N subjects written directly (the reports read statuses, never contact data)."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    now = vault.clock.now()
    rows = [
        {"id": sid, "status": "active", "dek_version": 1, "contact_revision": 0,
         "created_at": now, "updated_at": now} | extra
        for sid in ids
    ]  # fmt: skip
    async with vault.transaction() as conn:
        await conn.execute(insert(subjects), rows)
    return ids


async def seed_consents(vault, sids, purpose="offers.sms", status="granted", withdrawn_at=None):
    now = vault.clock.now()
    async with vault.transaction() as conn:
        await conn.execute(
            insert(consents),
            [
                {"id": str(uuid.uuid4()), "subject_id": s, "purpose": purpose, "basis": "consent",
                 "status": status, "created_at": now, "granted_at": now,
                 "withdrawn_at": withdrawn_at}
                for s in sids
            ],
        )  # fmt: skip


async def seed_contacts(vault, sids, *, at=DAY, brand="tresor", type="commercial",
                        channel="email", priority="normal", points=100, touchpoint=None,
                        direction="outbound", n=1):  # fmt: skip
    """`n` contacts per subject, one minute apart, recorded as the basket records them."""
    rows = [
        {"id": str(uuid.uuid4()), "subject_id": s, "at": at + timedelta(minutes=i),
         "month": at.strftime("%Y-%m"), "brand": brand, "channel": channel, "type": type,
         "priority": priority, "points_tenths": points, "touchpoint": touchpoint,
         "purpose": "offers.sms", "client": "crm", "direction": direction}
        for s in sids
        for i in range(n)
    ]  # fmt: skip
    async with vault.transaction() as conn:
        await conn.execute(insert(contacts), rows)


async def seed_budgets(vault, sids, used: int, month: str = MONTH) -> None:
    async with vault.transaction() as conn:
        await conn.execute(
            insert(contact_budgets),
            [{"subject_id": s, "month": month, "used_tenths": used, "booked_tenths": 0,
              "updated_at": vault.clock.now()} for s in sids],
        )  # fmt: skip


async def report_reads(vault) -> list[str]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_events.c.detail).where(
                audit_events.c.action == str(AuditAction.CAMPAIGN_REPORT)
            )
        )
        return [r[0] for r in rows]


async def test_basket_use_bands_and_missed_chances_match_the_seed(vault):
    """12 full baskets, 11 under half, 13 uncontacted active customers (of whom 10 with a
    basis and no contact at all, 2 last contacted four months ago, 1 objected), one erased
    customer left out: bands and missed chances for 3 and for 6 months are exactly those."""
    full = await seed_subjects(vault, 12)
    half = await seed_subjects(vault, 11)
    idle = await seed_subjects(vault, 10)
    old = await seed_subjects(vault, 2)
    objected = await seed_subjects(vault, 1, marketing_objection_at=DAY)
    erased = await seed_subjects(vault, 1, status="erased")
    await seed_budgets(vault, full, 250)
    await seed_budgets(vault, half, 100)
    await seed_contacts(vault, full + half)
    await seed_contacts(vault, old, at=datetime(2026, 7, 10, tzinfo=UTC))
    await seed_consents(vault, full + half + idle + old + objected + erased)
    active = full + half + idle + old + objected

    use = await reports.basket_use(vault, MARKETER, MONTH, months=3)
    assert use.customers == len(active)
    assert use.bands == {
        "none": len(idle) + len(old) + len(objected), "under_half": len(half),
        "half_to_80": 0, "near_full": 0, "full": len(full),
    }  # fmt: skip
    assert use.missed == len(idle) + len(old)
    six = await reports.basket_use(vault, MARKETER, MONTH, months=6)
    assert six.missed == len(idle)
    only = await reports.basket_use(vault, MARKETER, MONTH, months=3, purpose="newsletter.email")
    assert only.missed == 0
    unknown = await reports.basket_use(vault, MARKETER, MONTH, months=3, purpose="nope")
    assert unknown.missed == 0
    assert len(await report_reads(vault)) == 4


async def test_opt_outs_count_customers_who_left_within_the_days_after_a_contact(vault):
    """12 customers mailed by `tresor` on the 5th: 10 withdraw on the 10th (inside 30 days),
    2 on 20 January (outside); 11 texted by `tresor_outlet` of whom 3 object on the 6th
    and 1 objected the day before the contact (not after it). Counts per brand, channel
    and band are exactly those; with 90 days the two late withdrawals count too."""
    mailed = await seed_subjects(vault, 12)
    texted = await seed_subjects(vault, 8)
    objecting = await seed_subjects(vault, 3, marketing_objection_at=DAY + timedelta(days=1))
    before = await seed_subjects(vault, 1, marketing_objection_at=DAY - timedelta(days=1))
    await seed_budgets(vault, mailed, 250)
    await seed_contacts(vault, mailed, touchpoint="newsletter.signup")
    await seed_contacts(vault, texted + objecting + before, brand="tresor_outlet", channel="sms")
    await seed_consents(
        vault, mailed[:10], status="withdrawn", withdrawn_at=DAY + timedelta(days=5)
    )
    await seed_consents(
        vault, mailed[10:], status="withdrawn", withdrawn_at=datetime(2027, 1, 20, tzinfo=UTC)
    )

    out = await reports.opt_outs(vault, MARKETER, MONTH, days=30)
    got = {(r.dimension, r.value): (r.contacted, r.opted_out) for r in out.rows}
    outlet = len(texted) + len(objecting) + len(before)
    assert got[("brand", "tresor")] == (12, {"withdrawal": 10, "objection": 0, "erasure": 0})
    assert got[("brand", "tresor_outlet")] == (
        outlet, {"withdrawal": 0, "objection": len(objecting), "erasure": 0}
    )  # fmt: skip
    assert got[("channel", "email")][1]["withdrawal"] == 10
    assert got[("touchpoint", "newsletter.signup")][1]["withdrawal"] == 10
    assert got[("touchpoint", "none")][0] == outlet
    assert got[("band", "full")] == (12, {"withdrawal": 10, "objection": 0, "erasure": 0})
    assert got[("band", "none")][1]["objection"] == len(objecting)
    late = await reports.opt_outs(vault, MARKETER, MONTH, days=90)
    assert {(r.dimension, r.value): r.opted_out for r in late.rows}[("brand", "tresor")][
        "withdrawal"
    ] == 12
    narrowed = await reports.opt_outs(
        vault, MARKETER, MONTH, filters=reports.OptOutFilters(brand="tresor_outlet")
    )
    assert {r.value for r in narrowed.rows if r.dimension == "brand"} == {"tresor_outlet"}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda v: reports.basket_use(v, MARKETER, "2026-13"), "month"),
        (lambda v: reports.basket_use(v, MARKETER, MONTH, months=0), "months"),
        (lambda v: reports.opt_outs(v, MARKETER, MONTH, days=0), "days"),
    ],
)
async def test_bad_report_input_names_the_field_and_records_nothing(vault, call, field):
    """A bad month or range is refused naming the field, and nothing is audited."""
    with pytest.raises(InvalidInput) as exc:
        await call(vault)
    assert field in exc.value.errors
    assert await report_reads(vault) == []
