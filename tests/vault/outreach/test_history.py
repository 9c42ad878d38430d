"""The contact history in the domain: a CRM client reads one customer's contacts (outbound
and inbound) for its own purposes only, newest first, page by page, each read audited; an
unknown subject is a refusal on record; the customer's own view lists every contact (both
databases, injected clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.db import audit_trail
from tests.support.factories import WRITER, person
from vault.audit.events import Actor
from vault.errors import InvalidInput, NotFound
from vault.outreach import history
from vault.outreach.basket import Reservation, reserve
from vault.subjects.store import create_subject

CRM_PURPOSES = frozenset({"account.service", "order.delivery"})
SELF = Actor("subject", "self-service")
UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def _contact(vault, sid, *, purpose, channel="email", type="service", inbound=False):
    async with vault.transaction() as conn:
        made = await reserve(
            conn, vault, subject_id=sid, channel=channel, type=type, brand="tresor",
            priority="normal", now=vault.clock.now(), purpose=purpose, client="crm",
            inbound=inbound, touchpoint="hotline.inbound" if inbound else None,
        )  # fmt: skip
    assert isinstance(made, Reservation), made
    return made.contact_id


async def test_crm_reads_its_purposes_contacts_newest_first_both_directions(vault, clock):
    """Outbound and inbound contacts for the client's purposes are listed newest first with
    direction, channel, points and purpose; another purpose's contact is left out."""
    sid = await create_subject(vault, WRITER, person(1101))
    first = await _contact(vault, sid, purpose="order.delivery", channel="letter")
    clock.set(clock.now() + timedelta(hours=1))
    other = await _contact(vault, sid, purpose="newsletter.email", type="editorial")
    clock.set(clock.now() + timedelta(hours=1))
    called = await _contact(vault, sid, purpose="account.service", channel="phone", inbound=True)
    page = await history.client_page(vault, WRITER, CRM_PURPOSES, sid)
    assert [c.id for c in page.items] == [called, first]
    assert other not in [c.id for c in page.items]
    newest, oldest = page.items
    assert (newest.direction, newest.channel, newest.points) == ("inbound", "phone", 0)
    assert newest.touchpoint == "hotline.inbound"
    assert (oldest.direction, oldest.channel, oldest.purpose) == (
        "outbound",
        "letter",
        "order.delivery",
    )
    assert oldest.points == 3  # service 2 points x letter 1.5
    assert page.next_cursor is None
    (read,) = await audit_trail(vault, "client:contact_history:read")
    assert (read.decision, read.subject_id, read.actor_id) == ("allow", sid, "crm")


async def test_pages_follow_the_cursor_without_gaps_or_repeats(vault, clock):
    """Five contacts read two at a time come back complete, in order, once each."""
    sid = await create_subject(vault, WRITER, person(1102))
    made = []
    for _ in range(5):
        made.append(await _contact(vault, sid, purpose="account.service", inbound=True))
        clock.set(clock.now() + timedelta(minutes=5))
    seen, cursor = [], None
    while True:
        page = await history.client_page(vault, WRITER, CRM_PURPOSES, sid, limit=2, cursor=cursor)
        seen += [c.id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(made))
    assert len(await audit_trail(vault, "client:contact_history:read")) == 3


async def test_unknown_subject_is_refused_on_record_and_bad_paging_is_input_error(vault):
    """An unknown subject raises NotFound with a deny event subject_not_found; a bad limit
    or cursor is InvalidInput before anything is read."""
    with pytest.raises(NotFound):
        await history.client_page(vault, WRITER, CRM_PURPOSES, UNKNOWN)
    (denied,) = await audit_trail(vault, "client:contact_history:read")
    assert (denied.decision, denied.reason) == ("deny", "subject_not_found")
    sid = await create_subject(vault, WRITER, person(1103))
    with pytest.raises(InvalidInput):
        await history.client_page(vault, WRITER, CRM_PURPOSES, sid, limit=0)
    with pytest.raises(InvalidInput):
        await history.client_page(vault, WRITER, CRM_PURPOSES, sid, cursor="not-a-cursor!")


async def test_customer_sees_every_contact_including_other_purposes(vault, clock):
    """The customer's own view is not limited to one client's purposes, and is audited as
    the customer's read."""
    sid = await create_subject(vault, WRITER, person(1104))
    await _contact(vault, sid, purpose="order.delivery")
    clock.set(clock.now() + timedelta(minutes=1))
    await _contact(vault, sid, purpose="newsletter.email", type="editorial")
    own = await history.for_subject(vault, SELF, sid)
    assert [c.purpose for c in own] == ["newsletter.email", "order.delivery"]
    (read,) = await audit_trail(vault, "subject:contact_history:read")
    assert read.subject_id == sid
