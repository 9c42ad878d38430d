"""The monthly aggregates of the contact report (vault.outreach.report): follow-ups settled
per touchpoint, kept by when they were used and missed by the end of their window, and the
preference denials, which survive months at the edge of the calendar (both databases)."""

from __future__ import annotations

import pytest

from tests.support.factories import WRITER, person
from tests.support.followups import agree, contact
from vault.outreach.basket import Reservation
from vault.outreach.report import FollowupBucket, followup_report, preference_report
from vault.subjects.store import create_subject


async def test_followups_are_counted_kept_and_missed_per_touchpoint(vault, clock):
    """A follow-up used inside its window counts as kept, one whose window passed unused as
    missed (without the sweep), each under the touchpoint where it was agreed."""
    sid = await create_subject(vault, WRITER, person(713))
    missed = await agree(vault, clock, sid, touchpoint="shop.counter")
    kept = await agree(vault, clock, sid)
    clock.set(kept.due_from)
    assert isinstance(await contact(vault, sid, followup=kept.id), Reservation)
    clock.set(missed.due_until)
    async with vault.transaction() as conn:
        buckets = await followup_report(conn, vault, vault.pressure_rules.month_of(clock.now()))
    assert buckets == [
        FollowupBucket("hotline.inbound", 1, 0, 0),
        FollowupBucket("shop.counter", 0, 1, 0),
    ]


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "0001-01"])
async def test_preference_report_survives_months_at_the_edge_of_the_calendar(vault, month):
    """A syntactically valid month outside the calendar's range reports zero denials."""
    async with vault.transaction() as conn:
        report = await preference_report(conn, vault, month)
    assert report.denials_by_reason == {
        "contact_quiet_hours": 0,
        "contact_cap_reached": 0,
    }
