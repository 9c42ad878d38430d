"""The touchpoint report on both databases, against counts the test derives from its own
seed: consents given, withdrawals and objections of customers who gave a consent there,
contacts both ways, follow-ups kept, missed and about complaints, per basket month and
period, direct touchpoints before indirect ones and records outside the register last."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from tests.vault.campaigns.test_reports import report_reads, seed_contacts, seed_subjects
from vault.audit.events import Actor
from vault.campaigns import touchpoint_report
from vault.campaigns.masking import Tally
from vault.errors import InvalidInput
from vault.storage.outreach_tables import followups
from vault.storage.tables import consents

MARKETER = Actor("client", "marketing")
NOV = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
OCT = datetime(2026, 10, 6, 9, 0, tzinfo=UTC)


async def seed_given(vault, sids, touchpoint, *, at=NOV, status="granted", withdrawn_at=None):
    """One consent per subject given at `touchpoint` at `at`."""
    async with vault.transaction() as conn:
        await conn.execute(
            insert(consents),
            [
                {"id": str(uuid.uuid4()), "subject_id": s, "purpose": "offers.sms",
                 "basis": "consent", "status": status, "created_at": at, "granted_at": at,
                 "withdrawn_at": withdrawn_at, "touchpoint": touchpoint}
                for s in sids
            ],
        )  # fmt: skip


async def seed_followups(vault, sids, touchpoint, *, status, due_until, note=None,
                         closed_at=None, created_at=NOV):  # fmt: skip
    async with vault.transaction() as conn:
        await conn.execute(
            insert(followups),
            [
                {"id": str(uuid.uuid4()), "subject_id": s, "purpose": "offers.phone",
                 "channel": "phone", "type": "commercial", "brand": "tresor",
                 "touchpoint": touchpoint, "note": note, "due_from": due_until - timedelta(days=2),
                 "due_until": due_until, "status": status, "created_at": created_at,
                 "created_by": "crm", "closed_at": closed_at}
                for s in sids
            ],
        )  # fmt: skip


async def seed_period(vault) -> dict[str, list[str]]:
    """Two basket months (October, November 2026) at several touchpoints."""
    form = await seed_subjects(vault, 12)
    await seed_given(vault, form, "web.newsletter_form")
    await seed_given(vault, form[:10], "web.newsletter_form", at=OCT, status="withdrawn",
                     withdrawn_at=NOV + timedelta(days=3))  # fmt: skip
    objecting = await seed_subjects(vault, 11, marketing_objection_at=NOV + timedelta(days=7))
    await seed_given(vault, objecting, "web.checkout", at=OCT)
    # A consent given after the objection is not what the customer objected after.
    await seed_given(vault, objecting[:4], "shop.counter", at=NOV + timedelta(days=8))
    await seed_contacts(vault, form, touchpoint="email.newsletter", n=2)
    await seed_contacts(vault, form[:10], at=OCT, touchpoint="hotline.inbound",
                        direction="inbound", points=0)  # fmt: skip
    await seed_contacts(vault, form[:3], touchpoint=None)
    await seed_contacts(vault, form[:2], touchpoint="bogus.place")
    await seed_followups(vault, form[:10], "hotline.inbound", status="kept",
                         due_until=NOV + timedelta(days=2), closed_at=NOV)  # fmt: skip
    # Open past the window at T0 (2026-11-23): missed, swept or not.
    await seed_followups(vault, form[:6], "hotline.inbound", status="open",
                         due_until=NOV + timedelta(days=9), note="complaint")  # fmt: skip
    await seed_followups(vault, form[6:11], "hotline.inbound", status="missed",
                         due_until=NOV + timedelta(days=9), note="complaint")  # fmt: skip
    reviewers = await seed_subjects(vault, 2)
    await seed_given(vault, reviewers, "web.reviews")
    return {"form": form, "objecting": objecting}


def _row(report, key):
    (row,) = [r for r in report.rows if r.key == key]
    return row


async def test_counts_per_touchpoint_for_one_month(vault):
    """November: each measure counts its events and the customers behind them at the
    touchpoint where they happened, and nothing of October."""
    await seed_period(vault)
    r = await touchpoint_report.touchpoint_report(vault, MARKETER, "2026-11")
    assert (r.first_month, r.months) == ("2026-11", 1)
    form = _row(r, "web.newsletter_form")
    assert form.period["consents_given"] == Tally(12, 12)
    assert form.period["withdrawals"] == Tally(10, 10)
    assert _row(r, "web.checkout").period["objections"] == Tally(11, 11)
    assert _row(r, "shop.counter").period["objections"] == Tally(0, 0)
    assert _row(r, "email.newsletter").period["contacts_made"] == Tally(24, 12)
    hotline = _row(r, "hotline.inbound")
    assert hotline.period["contacts_inbound"] == Tally(0, 0)
    assert hotline.period["followups_kept"] == Tally(10, 10)
    assert hotline.period["followups_missed"] == Tally(11, 11)
    assert hotline.period["complaint_followups"] == Tally(11, 11)
    assert _row(r, "none").period["contacts_made"] == Tally(3, 3)
    assert _row(r, "unregistered").period["contacts_made"] == Tally(2, 2)
    assert _row(r, "web.reviews").period["consents_given"] == Tally(2, 2)


async def test_a_period_of_two_months_adds_the_months_and_keeps_each(vault):
    """October and November: the period's tally spans both months, with one tally per
    month beside it, oldest first."""
    await seed_period(vault)
    r = await touchpoint_report.touchpoint_report(vault, MARKETER, "2026-11", months=2)
    assert (r.first_month, r.months) == ("2026-10", 2)
    form = _row(r, "web.newsletter_form")
    assert form.period["consents_given"] == Tally(22, 12)
    assert form.monthly["consents_given"] == (Tally(10, 10), Tally(12, 12))
    hotline = _row(r, "hotline.inbound")
    assert hotline.period["contacts_inbound"] == Tally(10, 10)
    assert hotline.monthly["contacts_inbound"] == (Tally(10, 10), Tally(0, 0))


async def test_direct_touchpoints_come_first_then_indirect_then_outside_the_register(vault):
    """Every register entry is a row even without records, direct ones before indirect
    ones; `none` and `unregistered` close the list only when records carry them."""
    await seed_period(vault)
    r = await touchpoint_report.touchpoint_report(vault, MARKETER, "2026-11")
    kinds = [row.touchpoint.kind if row.touchpoint else "other" for row in r.rows]
    assert kinds == sorted(kinds, key=("direct", "indirect", "other").index)
    assert {row.key for row in r.rows} >= set(vault.touchpoints.touchpoints)
    assert [row.key for row in r.rows][-2:] == ["none", "unregistered"]
    empty = await touchpoint_report.touchpoint_report(vault, MARKETER, "2026-09")
    assert {row.key for row in empty.rows} == set(vault.touchpoints.touchpoints)


async def test_every_read_is_audited_and_bad_periods_are_refused(vault):
    """A read puts one report event on the trail; a bad month or period length is
    `InvalidInput` naming the field, with nothing audited."""
    await touchpoint_report.touchpoint_report(vault, MARKETER, "2026-11", months=3)
    assert len(await report_reads(vault)) == 1
    for month, months, field in (("2026-13", 1, "month"), ("2026-11", 0, "months"),
                                 ("2026-11", 13, "months")):  # fmt: skip
        with pytest.raises(InvalidInput) as err:
            await touchpoint_report.touchpoint_report(vault, MARKETER, month, months=months)
        assert field in err.value.errors
    assert len(await report_reads(vault)) == 1
