"""An undecided Art. 21(1) objection restricts processing for the purposes it names
(Art. 18(1)(d) GDPR), on both databases: lookups for them are denied `subject_restricted`
from the filing until the DPO decides; rejected, they are allowed again; approved, the bases
end; other subjects are not touched."""

from __future__ import annotations

from tests.support.factories import WRITER, person
from vault.access.lookup import LookupDenied, lookup
from vault.audit.events import Actor
from vault.bases.consents import record_basis
from vault.outreach.basket import ContactSpec
from vault.rights import requests as dsar
from vault.subjects.store import create_subject

DPO = Actor("dpo", "datenschutz")
NOTIFIER = Actor("client", "notifier", "req-1")
PURPOSE = "incident.notice"


async def _subject(vault, seed: int) -> str:
    sid = await create_subject(vault, WRITER, person(seed))
    await record_basis(vault, WRITER, sid, PURPOSE, reference="recall R-1")
    return sid


async def _reason(vault, sid: str) -> str | None:
    """The deny reason of a lookup for the objected purpose (None: allowed)."""
    try:
        await lookup(
            vault,
            NOTIFIER,
            frozenset({PURPOSE}),
            purpose_id=PURPOSE,
            identifier_kind="subject_id",
            identifier=sid,
            contact=ContactSpec(brand="tresor", priority="critical"),
        )
    except LookupDenied as denied:
        return str(denied.reason)
    return None


async def _object(vault, sid: str, *, verified: bool = False) -> str:
    record = await dsar.create_request(
        vault,
        DPO,
        subject_id=sid,
        type="legitimate_interest_objection",
        channel="letter",
        payload={"purposes": [PURPOSE], "grounds": "my particular situation"},
        verified=verified,
    )
    return record.id


async def test_pending_objection_restricts_until_rejected(vault):
    """From the filing the purpose is restricted; the DPO's rejection (compelling grounds)
    lifts it and the lookup is allowed again; another subject is never restricted."""
    sid, other = await _subject(vault, 1), await _subject(vault, 2)
    assert await _reason(vault, sid) is None
    rid = await _object(vault, sid)
    assert await _reason(vault, sid) == "subject_restricted"
    assert await _reason(vault, other) is None
    await dsar.verify(vault, DPO, rid)
    assert await _reason(vault, sid) == "subject_restricted"
    await dsar.reject(vault, DPO, rid, "recall notices protect life and health")
    assert await _reason(vault, sid) is None


async def test_approved_objection_ends_the_basis(vault):
    """Approved (no compelling grounds), the basis ends: the lookup stays denied, now
    because the basis ended, not because of the pending restriction."""
    sid = await _subject(vault, 3)
    rid = await _object(vault, sid, verified=True)
    assert await _reason(vault, sid) == "subject_restricted"
    await dsar.approve(vault, DPO, rid)
    assert await _reason(vault, sid) == "basis_ended"


async def test_a_second_open_objection_keeps_the_restriction(vault):
    """Two objections to one purpose: deciding one leaves the purpose restricted while the
    other is still open."""
    sid = await _subject(vault, 4)
    first, second = await _object(vault, sid), await _object(vault, sid, verified=True)
    await dsar.reject(vault, DPO, first, "compelling grounds")
    assert await _reason(vault, sid) == "subject_restricted"
    await dsar.complete(vault, DPO, second, "answered by letter: compelling grounds")
    assert await _reason(vault, sid) is None
