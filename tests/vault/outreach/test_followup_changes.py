"""The CRM's changes to a follow-up in the domain: an assignee at creation and a reminder
list filtered by it, rescheduling (window and assignee) and closing with an outcome, each
audited; a closed follow-up can no longer be kept; another purpose's follow-up is the same
NotFound as an unknown one (refusal on record); a follow-up no longer open is a Conflict;
bad input changes nothing (both databases, injected clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.db import audit_trail
from tests.support.factories import WRITER, person
from vault.errors import Conflict, InvalidInput, NotFound
from vault.outreach import followup_changes, followups
from vault.outreach.basket import reserve
from vault.storage.outreach_tables import followups as followups_table
from vault.subjects.decision import Deny
from vault.subjects.store import create_subject

CRM_PURPOSES = frozenset({"account.service", "order.delivery"})


def _window(clock, start_hours: float = 24, length_hours: float = 8) -> dict:
    start = clock.now() + timedelta(hours=start_hours)
    return {"due_from": start, "due_until": start + timedelta(hours=length_hours)}


async def _followup(vault, clock, sid, **kw) -> followups.Followup:
    args = {
        "subject_id": sid,
        "purpose": "account.service",
        "brand": "tresor",
        "touchpoint": "hotline.inbound",
        "note": "contract_question",
        **_window(clock),
        **kw,
    }
    return await followups.create(vault, WRITER, CRM_PURPOSES, **args)


async def _stored(vault, fid):
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(select(followups_table).where(followups_table.c.id == fid))
        ).one()


async def test_reminder_list_filters_by_assignee(vault, clock):
    """Due follow-ups assigned to a team are listed for that team only; without the filter
    every due one is listed; a malformed assignee is refused."""
    sid = await create_subject(vault, WRITER, person(1201))
    team = await _followup(vault, clock, sid, assignee="service-team")
    anyone = await _followup(vault, clock, sid)
    assert team.assignee == "service-team" and anyone.assignee is None
    later = clock.now() + timedelta(days=2)
    mine = await followups.list_due(
        vault, WRITER, CRM_PURPOSES, due_before=later, assignee="service-team"
    )
    assert [f.id for f in mine.items] == [team.id]
    other = await followups.list_due(
        vault, WRITER, CRM_PURPOSES, due_before=later, assignee="sales"
    )
    assert other.items == []
    every = await followups.list_due(vault, WRITER, CRM_PURPOSES, due_before=later)
    assert {f.id for f in every.items} == {team.id, anyone.id}
    with pytest.raises(InvalidInput):
        await followups.list_due(vault, WRITER, CRM_PURPOSES, assignee="Call +49 30 123")
    with pytest.raises(InvalidInput) as err:
        await _followup(vault, clock, sid, assignee="Frau Müller 0171 1234567")
    assert "assignee" in err.value.errors


async def test_reschedule_moves_the_window_and_hands_it_over(vault, clock):
    """The new window and assignee are stored, returned and audited; the follow-up stays open."""
    sid = await create_subject(vault, WRITER, person(1202))
    f = await _followup(vault, clock, sid)
    new = _window(clock, start_hours=72, length_hours=4)
    moved = await followup_changes.reschedule(
        vault, WRITER, CRM_PURPOSES, f.id, **new, assignee="backoffice"
    )
    assert (moved.due_from, moved.due_until) == (new["due_from"], new["due_until"])
    assert (moved.status, moved.assignee) == ("open", "backoffice")
    row = await _stored(vault, f.id)
    assert (row.assignee, row.status) == ("backoffice", "open")
    (event,) = await audit_trail(vault, "client:followup:reschedule")
    assert (event.decision, event.subject_id, event.purpose) == ("allow", sid, "account.service")


async def test_close_with_outcome_ends_it_and_a_lookup_can_no_longer_keep_it(vault, clock):
    """A closed follow-up has status closed and its outcome; a contact naming it inside the
    window is denied; closing again is a Conflict on record."""
    sid = await create_subject(vault, WRITER, person(1203))
    f = await _followup(vault, clock, sid)
    closed = await followup_changes.close(
        vault, WRITER, CRM_PURPOSES, f.id, outcome="customer_called_in"
    )
    assert (closed.status, closed.outcome, closed.closed_at) == (
        "closed",
        "customer_called_in",
        clock.now(),
    )
    clock.set(clock.now() + timedelta(hours=25))
    async with vault.transaction() as conn:
        used = await reserve(
            conn, vault, subject_id=sid, channel="email", type="service", brand="tresor",
            priority="normal", now=clock.now(), purpose="account.service", client="crm",
            followup=f.id,
        )  # fmt: skip
    assert isinstance(used, Deny) and used.reason == "followup_not_usable"
    with pytest.raises(Conflict):
        await followup_changes.close(vault, WRITER, CRM_PURPOSES, f.id, outcome="not_reachable")
    events = await audit_trail(vault, "client:followup:close")
    assert [(e.decision, e.reason) for e in events] == [
        ("allow", None),
        ("deny", "followup_not_usable"),
    ]


async def test_other_purpose_or_unknown_id_is_not_found_and_bad_input_changes_nothing(vault, clock):
    """A client without the purpose gets NotFound (denial purpose_not_allowed on record); an
    unknown id NotFound; a bad outcome or window InvalidInput; the follow-up is unchanged."""
    sid = await create_subject(vault, WRITER, person(1204))
    f = await _followup(vault, clock, sid)
    with pytest.raises(NotFound):
        await followup_changes.close(
            vault, WRITER, frozenset({"newsletter.email"}), f.id, outcome="no_longer_needed"
        )
    (denied,) = await audit_trail(vault, "client:followup:close")
    assert (denied.decision, denied.reason, denied.subject_id) == (
        "deny",
        "purpose_not_allowed",
        sid,
    )
    with pytest.raises(NotFound):
        await followup_changes.close(
            vault, WRITER, CRM_PURPOSES, "00000000-0000-4000-8000-000000000000",
            outcome="no_longer_needed",
        )  # fmt: skip
    with pytest.raises(InvalidInput):
        await followup_changes.close(vault, WRITER, CRM_PURPOSES, f.id, outcome="rang 0171 12")
    past = {
        "due_from": clock.now() - timedelta(days=2),
        "due_until": clock.now() - timedelta(days=1),
    }
    with pytest.raises(InvalidInput) as err:
        await followup_changes.reschedule(vault, WRITER, CRM_PURPOSES, f.id, **past)
    assert "due_until" in err.value.errors
    row = await _stored(vault, f.id)
    assert (row.status, row.outcome, row.due_from) == ("open", None, row.due_from)
    assert await audit_trail(vault, "client:followup:reschedule") == []


async def test_a_missed_followup_cannot_be_rescheduled(vault, clock):
    """Once its window has passed, a follow-up is missed and rescheduling it is a Conflict."""
    sid = await create_subject(vault, WRITER, person(1205))
    f = await _followup(vault, clock, sid)
    clock.set(clock.now() + timedelta(days=3))
    with pytest.raises(Conflict):
        await followup_changes.reschedule(
            vault, WRITER, CRM_PURPOSES, f.id, **_window(clock, start_hours=1)
        )
