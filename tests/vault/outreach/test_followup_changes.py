"""Changes to a follow-up in the domain: the customer's cancel, the retention sweep storing
`missed` once, the CRM's rescheduling (window and assignee) and closing with an outcome, each
audited; a closed follow-up can no longer be kept; another purpose's follow-up is the same
NotFound as an unknown one (refusal on record); a follow-up no longer open is a Conflict;
bad input changes nothing (both databases, injected clock)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.db import audit_trail
from tests.support.factories import WRITER, person
from tests.support.followups import CRM_PURPOSES, agree, contact, window
from vault.audit.events import Actor
from vault.errors import Conflict, InvalidInput, NotFound
from vault.outreach import followup_changes, followup_reads
from vault.outreach.basket import Reservation, reserve
from vault.rights.retention import run_retention
from vault.storage.outreach_tables import followups as followups_table
from vault.subjects.decision import Deny, DenyReason
from vault.subjects.store import create_subject

SELF = Actor("subject", "self-service")


async def _stored(vault, fid):
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(select(followups_table).where(followups_table.c.id == fid))
        ).one()


async def test_reschedule_moves_the_window_and_hands_it_over(vault, clock):
    """The new window and assignee are stored, returned and audited; the follow-up stays open."""
    sid = await create_subject(vault, WRITER, person(1202))
    f = await agree(vault, clock, sid)
    new = window(clock, start_hours=72, length_hours=4)
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
    f = await agree(vault, clock, sid)
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
    f = await agree(vault, clock, sid)
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
    f = await agree(vault, clock, sid)
    clock.set(clock.now() + timedelta(days=3))
    with pytest.raises(Conflict):
        await followup_changes.reschedule(
            vault, WRITER, CRM_PURPOSES, f.id, **window(clock, start_hours=1)
        )


# ------------------------------------------------------------------ the customer and the sweep


async def test_cancelled_by_the_customer_then_refused(vault, clock):
    """The customer cancels an open follow-up (audited); using it afterwards is followup_not_usable,
    cancelling again a conflict."""
    sid = await create_subject(vault, WRITER, person(708))
    other = await create_subject(vault, WRITER, person(709))
    f = await agree(vault, clock, sid)
    with pytest.raises(NotFound):  # someone else's follow-up
        await followup_changes.cancel_by_subject(vault, SELF, other, f.id)
    cancelled = await followup_changes.cancel_by_subject(vault, SELF, sid, f.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(Conflict):
        await followup_changes.cancel_by_subject(vault, SELF, sid, f.id)
    clock.set(f.due_from + timedelta(minutes=5))
    got = await contact(vault, sid, followup=f.id)
    assert isinstance(got, Deny) and got.reason is DenyReason.FOLLOWUP_NOT_USABLE
    (event,) = await audit_trail(vault, "subject:followup:cancel")
    assert (event.subject_id, event.actor_type) == (sid, "subject")
    assert json.loads(event.detail) == {"followup": {"id": f.id}}


async def test_missed_after_the_window_computed_and_stored_by_the_sweep(vault, clock):
    """An unused follow-up is missed once its window ends; the retention sweep stores it once,
    audited."""
    sid = await create_subject(vault, WRITER, person(711))
    f = await agree(vault, clock, sid, touchpoint="shop.counter")
    kept = await agree(vault, clock, sid)
    clock.set(kept.due_from)
    assert isinstance(await contact(vault, sid, followup=kept.id), Reservation)
    clock.set(f.due_until)
    assert (await followup_reads.get(vault, WRITER, CRM_PURPOSES, f.id)).status == "missed"
    assert [o.id for o in await followup_reads.overdue(vault, WRITER)] == [f.id]
    first = await run_retention(vault)
    second = await run_retention(vault)
    assert (first.missed_followups, second.missed_followups) == (1, 0)
    (event,) = await audit_trail(vault, "system:followup:miss")
    assert (event.subject_id, event.actor_type) == (sid, "system")
