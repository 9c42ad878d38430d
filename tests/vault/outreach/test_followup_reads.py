"""Reading agreed follow-ups in the domain: the reminder list for a client's purposes, by
due time and assignee, in pages; another purpose's follow-up is not revealed (both databases,
injected clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.factories import WRITER, person
from tests.support.followups import CRM_PURPOSES, agree, window
from vault.audit.events import Actor
from vault.errors import InvalidInput, NotFound
from vault.outreach import followup_changes, followup_reads
from vault.subjects.store import create_subject

SELF = Actor("subject", "self-service")


async def test_listing_by_due_before_is_limited_to_the_clients_purposes_and_pages(vault, clock):
    """Only open follow-ups of the client's purposes starting before due_before are listed, earliest
    first, in pages."""
    sid = await create_subject(vault, WRITER, person(710))
    early = [await agree(vault, clock, sid, **window(clock, 2 + i)) for i in range(3)]
    late = await agree(vault, clock, sid, **window(clock, 72))
    letter = await agree(vault, clock, sid, purpose="order.delivery", **window(clock, 1))
    cutoff = clock.now() + timedelta(hours=48)
    page = await followup_reads.list_due(
        vault, WRITER, frozenset({"account.service"}), due_before=cutoff, limit=2
    )
    assert [f.id for f in page.items] == [early[0].id, early[1].id] and page.next_cursor
    rest = await followup_reads.list_due(
        vault, WRITER, frozenset({"account.service"}), due_before=cutoff, cursor=page.next_cursor
    )
    assert [f.id for f in rest.items] == [early[2].id] and rest.next_cursor is None
    both = await followup_reads.list_due(vault, WRITER, CRM_PURPOSES, due_before=cutoff)
    assert {f.id for f in both.items} == {letter.id, *(f.id for f in early)}
    assert late.id not in {f.id for f in both.items}
    assert (
        await followup_reads.list_due(vault, WRITER, frozenset(), due_before=cutoff)
    ).items == []
    await followup_changes.cancel_by_subject(vault, SELF, sid, early[0].id)
    ids = {
        f.id
        for f in (
            await followup_reads.list_due(vault, WRITER, CRM_PURPOSES, due_before=cutoff)
        ).items
    }
    assert early[0].id not in ids
    with pytest.raises(InvalidInput):
        await followup_reads.list_due(vault, WRITER, CRM_PURPOSES, cursor="bm90LWEtY3Vyc29y")
    with pytest.raises(NotFound):  # another client's purpose is not revealed
        await followup_reads.get(vault, WRITER, frozenset({"newsletter.email"}), late.id)


async def test_reminder_list_filters_by_assignee(vault, clock):
    """Due follow-ups assigned to a team are listed for that team only; without the filter
    every due one is listed; a malformed assignee is refused."""
    sid = await create_subject(vault, WRITER, person(1201))
    team = await agree(vault, clock, sid, assignee="service-team")
    anyone = await agree(vault, clock, sid)
    assert team.assignee == "service-team" and anyone.assignee is None
    later = clock.now() + timedelta(days=2)
    mine = await followup_reads.list_due(
        vault, WRITER, CRM_PURPOSES, due_before=later, assignee="service-team"
    )
    assert [f.id for f in mine.items] == [team.id]
    other = await followup_reads.list_due(
        vault, WRITER, CRM_PURPOSES, due_before=later, assignee="sales"
    )
    assert other.items == []
    every = await followup_reads.list_due(vault, WRITER, CRM_PURPOSES, due_before=later)
    assert {f.id for f in every.items} == {team.id, anyone.id}
    with pytest.raises(InvalidInput):
        await followup_reads.list_due(vault, WRITER, CRM_PURPOSES, assignee="Call +49 30 123")
    with pytest.raises(InvalidInput) as err:
        await agree(vault, clock, sid, assignee="Frau Müller 0171 1234567")
    assert "assignee" in err.value.errors
