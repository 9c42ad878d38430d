"""Agreed follow-ups in the domain: creation rules, use inside the window without touching
the basket, refusal outside it, and the audit trail (both databases, injected clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.support.db import audit_trail
from tests.support.factories import WRITER, person
from tests.support.followups import CRM_PURPOSES, agree, contact
from vault.errors import AccessDenied, Conflict, InvalidInput, NotFound
from vault.outreach import followup_reads
from vault.outreach.basket import Reservation
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.outreach_tables import followups as followups_table
from vault.subjects.decision import Deny, DenyReason
from vault.subjects.store import create_subject


async def _used_tenths(vault, sid) -> int | None:
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(
                select(contact_budgets.c.used_tenths).where(contact_budgets.c.subject_id == sid)
            )
        ).scalar_one_or_none()


async def test_create_stores_an_open_followup_with_the_purposes_channel_and_type(vault, clock):
    """A follow-up takes channel and type from its purpose, stores the window in UTC and is open."""
    sid = await create_subject(vault, WRITER, person(701))
    berlin = datetime(2026, 11, 24, 18, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    f = await agree(vault, clock, sid, due_from=berlin, due_until=berlin + timedelta(hours=2))
    assert (f.channel, f.type, f.status, f.note) == (
        "email",
        "service",
        "open",
        "contract_question",
    )
    assert f.due_from == datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    got = await followup_reads.get(vault, WRITER, CRM_PURPOSES, f.id)
    assert got.due_from == f.due_from and got.due_until == f.due_until and got.status == "open"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"purpose": "no.such.purpose"}, "purpose"),
        ({"note": "call +49 30 1234567"}, "note"),
        ({"touchpoint": "moon.base"}, "touchpoint"),
        ({"channel": "sms"}, "channel"),
        ({"type": "commercial"}, "type"),
        ({"brand": "acme"}, "brand"),
        ({"due_until": datetime(2026, 11, 24, 9, 0, tzinfo=UTC)}, "due_until"),  # before from
        ({"due_from": datetime(2026, 11, 22, 9, 0, tzinfo=UTC)}, "due_from"),  # in the past
        (
            {
                "due_from": datetime(2027, 12, 1, 9, 0, tzinfo=UTC),
                "due_until": datetime(2027, 12, 1, 12, 0, tzinfo=UTC),
            },
            "due_from",
        ),  # too far ahead
        ({"due_until": datetime(2027, 1, 30, 9, 0, tzinfo=UTC)}, "due_until"),  # window > 31 days
        ({"due_from": datetime(2026, 11, 24, 9, 0)}, "due_from"),  # no time zone
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    vault, clock, change, field
):
    """Each broken rule raises InvalidInput naming its field, and no follow-up or event is
    stored."""
    sid = await create_subject(vault, WRITER, person(702))
    with pytest.raises(InvalidInput) as err:
        await agree(vault, clock, sid, **change)
    assert field in err.value.errors
    async with vault.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(followups_table))).scalar() == 0
    assert await audit_trail(vault, "client:followup:create") == []


async def test_client_needs_the_purpose_and_the_subject_must_be_active(vault, clock):
    """A purpose the client may not use is purpose_not_allowed; an unknown subject 404; an erased
    one 409."""
    sid = await create_subject(vault, WRITER, person(703))
    with pytest.raises(AccessDenied) as err:
        await agree(vault, clock, sid, purposes=frozenset({"order.delivery"}))
    assert err.value.reason == DenyReason.PURPOSE_NOT_ALLOWED
    with pytest.raises(NotFound):
        await agree(vault, clock, "00000000-0000-4000-8000-000000000000")
    from tests.support.dsar import erase

    await erase(vault, WRITER, sid)
    with pytest.raises(Conflict):
        await agree(vault, clock, sid)


async def test_allowed_inside_the_window_with_a_full_basket_and_the_counter_unchanged(vault, clock):
    """With the basket full, a contact naming the follow-up inside its window is allowed at 0
    points, leaves the counter alone, and the follow-up becomes kept."""
    sid = await create_subject(vault, WRITER, person(704))
    f = await agree(vault, clock, sid)
    for _ in range(2):
        assert isinstance(await contact(vault, sid, type="commercial", purpose=None), Reservation)
    assert isinstance(await contact(vault, sid, type="editorial", purpose=None), Reservation)
    clock.set(f.due_from + timedelta(hours=1))
    full = await contact(vault, sid, type="editorial", purpose=None)
    assert isinstance(full, Deny) and full.reason is DenyReason.CONTACT_BUDGET_EXHAUSTED
    before = await _used_tenths(vault, sid)
    got = await contact(vault, sid, followup=f.id)
    assert isinstance(got, Reservation), got
    assert (got.points, got.used) == (0, 25)
    assert await _used_tenths(vault, sid) == before == 250
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(contacts).where(contacts.c.id == got.contact_id))).one()
    assert row.points_tenths == 0 and row.purpose == "account.service"
    kept = await followup_reads.get(vault, WRITER, CRM_PURPOSES, f.id)
    assert kept.status == "kept" and kept.contact_id == got.contact_id
    again = await contact(vault, sid, followup=f.id)  # used once only
    assert isinstance(again, Deny) and again.reason is DenyReason.FOLLOWUP_NOT_USABLE


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (timedelta(hours=23, minutes=59), DenyReason.FOLLOWUP_NOT_IN_WINDOW),  # a minute early
        (timedelta(hours=32), DenyReason.FOLLOWUP_NOT_IN_WINDOW),  # the window's end itself
        (timedelta(days=3), DenyReason.FOLLOWUP_NOT_IN_WINDOW),  # long after
    ],
)
async def test_refused_before_and_after_thewindow(vault, clock, at, reason):
    """Outside [due_from, due_until) the contact is denied followup_not_in_window and nothing is
    recorded."""
    sid = await create_subject(vault, WRITER, person(705))
    f = await agree(vault, clock, sid)
    clock.set(clock.now() + at)
    got = await contact(vault, sid, followup=f.id)
    assert isinstance(got, Deny) and got.reason is reason
    async with vault.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(contacts))).scalar() == 0
    assert await _used_tenths(vault, sid) is None
    assert (await followup_reads.get(vault, WRITER, CRM_PURPOSES, f.id)).status in (
        "open",
        "missed",
    )


async def test_not_usable_for_another_subject_channel_purpose_or_an_unknown_id(vault, clock):
    """Another subject's follow-up, another channel or purpose, or an unknown id are
    followup_not_usable."""
    sid = await create_subject(vault, WRITER, person(706))
    other = await create_subject(vault, WRITER, person(707))
    f = await agree(vault, clock, sid)
    clock.set(f.due_from)
    for outcome in (
        await contact(vault, other, followup=f.id),
        await contact(vault, sid, followup=f.id, channel="letter"),
        await contact(vault, sid, followup=f.id, purpose="order.delivery", channel="email"),
        await contact(vault, sid, followup="00000000-0000-4000-8000-000000000000"),
        await contact(vault, sid, followup="not-a-uuid"),
    ):
        assert isinstance(outcome, Deny) and outcome.reason is DenyReason.FOLLOWUP_NOT_USABLE
    assert (await followup_reads.get(vault, WRITER, CRM_PURPOSES, f.id)).status == "open"


async def test_every_create_use_and_denial_is_audited_without_plaintext(vault, clock):
    """Create and each use, allowed or denied, write an event with ids and reason only, never
    contact data."""
    p = person(712)
    sid = await create_subject(vault, WRITER, p)
    f = await agree(vault, clock, sid)
    await contact(vault, sid, followup=f.id)  # too early
    clock.set(f.due_from)
    got = await contact(vault, sid, followup=f.id)
    assert isinstance(got, Reservation)
    (created,) = await audit_trail(vault, "client:followup:create")
    assert (created.subject_id, created.purpose, created.decision) == (
        sid,
        "account.service",
        "allow",
    )
    assert json.loads(created.detail)["followup"]["id"] == f.id
    uses = await audit_trail(vault, "client:followup:use")
    assert [(e.decision, e.reason) for e in uses] == [
        ("deny", "followup_not_in_window"),
        ("allow", None),
    ]
    assert json.loads(uses[1].detail)["contact"] == {"id": got.contact_id, "points": 0}
    async with vault.engine.connect() as conn:
        dump = " ".join(str(tuple(r)) for r in (await conn.execute(select(audit_events))).all())
    for value in (p["email"], p["phone"], p["name"], p["postal_address"]["street"]):
        assert value not in dump
