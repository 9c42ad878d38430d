"""A campaign forecast sorts every audience member into reachable or the first reason it
is not (missing basis, basket, own cap, quiet hours), before and after booking, on both
databases, and each read is audited."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.support.factories import WRITER, person
from tests.vault.campaigns.test_booking import MARKETER, _campaign, _customers, _send
from vault.audit.events import AuditAction
from vault.bases.consents import Evidence
from vault.campaigns import booking
from vault.campaigns.forecast import Forecast, forecast
from vault.outreach import preference_changes
from vault.storage.audit_tables import audit_events
from vault.subjects.store import create_subject

EVIDENCE = Evidence(
    touchpoint="hotline.inbound", method="recorded_call", notice_version="prefs-2026-11",
    language="de",
)  # fmt: skip


async def test_forecast_counts_each_member_under_its_first_reason(vault):
    """16 members: 2 without a basis, 2 whose baskets already hold an SMS offer, 1 quiet
    on SMS at the send time, 1 with an own cap of 5 points: 10 reachable, before and after
    booking."""
    sids = await _customers(vault, 14)
    strangers = [await create_subject(vault, WRITER, person(300 + i)) for i in range(2)]
    for sid in sids[:2]:
        await _send(vault, sid, None)
    quiet = {"timezone": "UTC", "quiet": {"sms": {"start": "08:00", "end": "12:00"}}}
    await preference_changes.set_preferences(
        vault, WRITER, sids[2], quiet, source="client", evidence=EVIDENCE
    )
    capped = {"timezone": "UTC", "monthly_cap_points": 5}
    await preference_changes.set_preferences(
        vault, WRITER, sids[3], capped, source="client", evidence=EVIDENCE
    )
    camp = await _campaign(vault, "Forecast", 1, sids + strangers)
    expected = Forecast(
        audience=16, reachable=10, blocked_by_basket=2, blocked_by_preferences=1,
        missing_basis=2, blocked_by_quiet_hours=1,
    )  # fmt: skip
    assert (await forecast(vault, MARKETER, camp))[1] == expected
    outcome = await booking.book(vault, MARKETER, camp)
    assert (outcome.booked, outcome.blocked, outcome.no_basis) == (12, 2, 2)
    assert (await forecast(vault, MARKETER, camp))[1] == expected
    async with vault.engine.connect() as conn:
        reads = (
            await conn.execute(
                select(func.count()).where(
                    audit_events.c.action == str(AuditAction.CAMPAIGN_REPORT)
                )
            )
        ).scalar_one()
    assert reads == 2
