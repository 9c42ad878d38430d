"""A data-subject request that told recipients about its change is complete only when
every recipient confirmed or the DPO closed the rest with a reason; its history says who
was told and who confirmed how (both databases)."""

from __future__ import annotations

import pytest

from tests.support.dsar import DPO, contract, new_subject
from tests.support.recipients import client_recipient, delivered, lookup_by
from vault.errors import Conflict
from vault.recipients import acks
from vault.rights import requests as dsar

URL = "http://127.0.0.1:9/hook"


async def _erasure_told_two(vault):
    mailer, _ = await client_recipient(vault, "mailer", URL)
    callcentre, _ = await client_recipient(vault, "callcentre", URL)
    await client_recipient(vault, "never", URL)
    sid, _ = await new_subject(vault, 41)
    await contract(vault, sid)
    await lookup_by(vault, mailer, sid)
    await lookup_by(vault, callcentre, sid)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="erasure", channel="letter")
    await dsar.verify(vault, DPO, record.id)
    return sid, mailer, callcentre, await dsar.approve(vault, DPO, record.id)


async def test_an_erasure_waits_for_its_recipients(vault):
    """Approving the erasure tells the two clients that received the data (not the one
    that never did) and leaves the request `awaiting_recipients`; settling is refused
    while one has not confirmed; after both confirm, it completes, naming each outcome."""
    sid, mailer, callcentre, record = await _erasure_told_two(vault)
    assert record.status == "awaiting_recipients"
    told = record.history[-1]
    assert told["event"] == "recipients_told"
    assert "mailer (subject.erased)" in told["note"] and "callcentre" in told["note"]
    assert "never" not in told["note"]
    notices = await delivered(vault)
    assert {n.recipient for n in notices} == {"mailer", "callcentre"}
    for n in notices:
        if n.recipient == "mailer":
            await acks.ack(vault, mailer, n.id, "deleted")
    with pytest.raises(Conflict, match="not confirmed"):
        await dsar.settle(vault, DPO, record.id)
    assert await dsar.settle_awaiting(vault) == 0
    for n in notices:
        if n.recipient == "callcentre":
            await acks.ack(vault, callcentre, n.id, "not_held")
    assert await dsar.settle_awaiting(vault) == 1
    done = await dsar.get_request(vault, record.id)
    assert done.status == "completed"
    note = done.history[-1]["note"]
    assert "mailer: deleted" in note and "callcentre: not_held" in note


async def test_the_dpo_closes_what_a_recipient_never_confirms(vault):
    """A recipient that never answers: the DPO closes its notices with a reason, then the
    request completes and the history names the reason."""
    sid, mailer, _, record = await _erasure_told_two(vault)
    for n in await delivered(vault):
        if n.recipient == "mailer":
            await acks.ack(vault, mailer, n.id, "deleted")
        else:
            await acks.close(vault, DPO, n.id, "call centre system decommissioned")
    done = await dsar.settle(vault, DPO, record.id)
    assert done.status == "completed"
    assert "closed by the DPO (call centre system decommissioned)" in done.history[-1]["note"]
    with pytest.raises(Conflict):
        await dsar.settle(vault, DPO, record.id)


async def test_without_recipients_a_request_closes_at_once(vault):
    """A request whose change concerns no recipient completes on approval as before."""
    sid, _ = await new_subject(vault, 42)
    await contract(vault, sid)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="erasure", channel="letter")
    await dsar.verify(vault, DPO, record.id)
    assert (await dsar.approve(vault, DPO, record.id)).status == "completed"
