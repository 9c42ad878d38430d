"""An undecided Art. 21(1) objection restricts processing for the purposes it names
(Art. 18(1)(d) GDPR), on both databases: lookups for them are denied `subject_restricted`
from the filing until the DPO decides; rejected, they are allowed again; approved, the bases
end; other subjects are not touched; a basis recorded while the objection is open is
restricted too."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.factories import WRITER, person
from vault.access.lookup import LookupDenied, lookup
from vault.audit.events import Actor
from vault.bases.consents import record_basis
from vault.outreach.basket import ContactSpec
from vault.rights import requests as dsar
from vault.storage.tables import consents
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


async def test_a_basis_recorded_while_the_objection_is_open_is_restricted_too(vault):
    """A basis for the objected purpose recorded after the filing (superseding the old one,
    or the first one at all) is marked at once and its lookup denied `subject_restricted`,
    exactly as for the basis that existed when the objection was filed; rejected, both
    are allowed again."""
    sid = await _subject(vault, 5)
    rid = await _object(vault, sid)
    await record_basis(vault, WRITER, sid, PURPOSE, reference="recall R-2")
    assert await _reason(vault, sid) == "subject_restricted"
    fresh = await create_subject(vault, WRITER, person(6))
    early = await _object(vault, fresh)
    await record_basis(vault, WRITER, fresh, PURPOSE, reference="recall R-3")
    assert await _reason(vault, fresh) == "subject_restricted"
    async with vault.engine.connect() as conn:
        marks = (
            await conn.execute(
                select(consents.c.subject_id, consents.c.status)
                .where(consents.c.objection_pending_at.is_not(None))
                .order_by(consents.c.created_at)
            )
        ).all()
    assert sorted((s, str(st)) for s, st in marks) == sorted(
        [(sid, "superseded"), (sid, "active"), (fresh, "active")]
    )
    await dsar.reject(vault, DPO, rid, "recall notices protect life and health")
    await dsar.reject(vault, DPO, early, "recall notices protect life and health")
    assert await _reason(vault, sid) is None and await _reason(vault, fresh) is None


async def test_a_basis_on_another_ground_is_not_marked(vault):
    """Only legitimate-interest bases of the objected purposes are restricted: a contract
    basis recorded while the objection is open carries no mark."""
    sid = await _subject(vault, 7)
    await _object(vault, sid)
    await record_basis(vault, WRITER, sid, "account.service", reference="contract C-9")
    async with vault.engine.connect() as conn:
        marked = (
            await conn.execute(
                select(consents.c.purpose).where(consents.c.objection_pending_at.is_not(None))
            )
        ).all()
    assert [r.purpose for r in marked] == [PURPOSE]
