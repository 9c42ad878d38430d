"""Attacks by someone with write access to the database, on both databases: an older
ciphertext put back, a blind-index entry moved to another subject, a ciphertext tampered
with. Each is refused (no value leaves) and each refusal is an audited denial with the reason
`integrity_error`; nothing is reserved on the customer's behalf."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.support.factories import WRITER, person
from tests.support.privacy import audit_rows
from vault.access import bulk
from vault.access.lookup import lookup
from vault.audit.events import Actor, AuditAction
from vault.bases.consents import record_basis
from vault.errors import VaultError
from vault.outreach.basket import ContactSpec
from vault.rights import export
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.tables import subjects
from vault.subjects.store import create_subject, rectify_contact

SHOP = Actor("client", "shop", "req-integrity")
DPO = Actor("dpo", "dpo-office", "req-dpo")
ALLOWED = frozenset({"order.delivery", "account.service"})


async def _customer(
    vault, seed: int, purpose: str = "account.service"
) -> tuple[dict[str, Any], str]:
    p = person(seed)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(vault, WRITER, sid, purpose, reference=f"Vertrag {seed}")
    return p, sid


async def _row(vault, sid: str) -> Any:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(subjects).where(subjects.c.id == sid))).one()


async def _write(vault, sid: str, **values: Any) -> None:
    """The attacker: a direct UPDATE of the subject's row, past every vault check."""
    async with vault.engine.begin() as conn:
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(**values))


async def _lookup(vault, kind: str, value: str, purpose: str = "account.service", **kw: Any):
    return await lookup(
        vault, SHOP, ALLOWED, purpose_id=purpose, identifier_kind=kind, identifier=value, **kw
    )


async def _refused(call) -> VaultError:
    """The call raises the vault's integrity failure, which carries no value."""
    with pytest.raises(VaultError) as info:
        await call
    assert info.value.code == "integrity_error", repr(info.value)
    return info.value


async def _integrity_events(vault, action: str = AuditAction.LOOKUP) -> list[dict[str, Any]]:
    return [
        e
        for e in await audit_rows(vault)
        if e["action"] == action and e["reason"] == "integrity_error"
    ]


def _flip(blob: bytes) -> bytes:
    data = bytearray(blob)
    data[-1] ^= 0x01
    return bytes(data)


async def test_replayed_older_ciphertext_is_refused_and_audited(vault):
    """A field's older ciphertext put back after a rectification no longer opens: the lookup
    is an audited `integrity_error` denial and the old name does not leave."""
    p, sid = await _customer(vault, 401)
    old = (await _row(vault, sid)).name_ct
    await rectify_contact(vault, WRITER, sid, {"name": "Neuer Name"})
    await _write(vault, sid, name_ct=old)
    error = await _refused(_lookup(vault, "subject_id", sid))
    assert p["name"] not in str(error) and "Neuer Name" not in str(error)
    (event,) = await _integrity_events(vault)
    assert event["subject_id"] == sid and event["decision"] == "deny"


async def test_moved_email_index_is_refused_and_audited(vault):
    """Subject A's e-mail blind index moved onto subject B's row: a lookup by A's address
    finds B's row, re-derives B's index from B's decrypted address, sees the mismatch and
    refuses (audited), instead of handing out B's data."""
    a, sid_a = await _customer(vault, 402)
    b, sid_b = await _customer(vault, 403)
    digest_a = (await _row(vault, sid_a)).email_bidx
    await _write(vault, sid_a, email_bidx=None)
    await _write(vault, sid_b, email_bidx=digest_a)
    error = await _refused(_lookup(vault, "email", a["email"]))
    assert b["email"] not in str(error) and b["name"] not in str(error)
    (event,) = await _integrity_events(vault)
    assert event["subject_id"] == sid_b and event["fields"] in (None, "email,name")
    assert b["email"] not in json.dumps(event, default=str)


async def test_moved_index_is_refused_even_when_the_lookup_would_be_denied(vault):
    """The mismatch is found before the decision: a lookup by A's address that lands on a
    subject B without a basis is still an integrity failure, not B's denial reason."""
    a, sid_a = await _customer(vault, 404)
    sid_b = await create_subject(vault, WRITER, person(405))  # no basis at all
    digest_a = (await _row(vault, sid_a)).phone_bidx
    await _write(vault, sid_a, phone_bidx=None)
    await _write(vault, sid_b, phone_bidx=digest_a)
    await _refused(_lookup(vault, "phone", a["phone"]))
    (event,) = await _integrity_events(vault)
    assert event["subject_id"] == sid_b


async def test_moved_index_with_a_contact_reserves_nothing(vault):
    """With an outbound contact (the transactional path), a moved customer-number index is
    refused before any points are reserved in the other customer's basket."""
    a, sid_a = await _customer(vault, 406, "order.delivery")
    _, sid_b = await _customer(vault, 407, "order.delivery")
    digest_a = (await _row(vault, sid_a)).external_ref_bidx
    await _write(vault, sid_a, external_ref_bidx=None)
    await _write(vault, sid_b, external_ref_bidx=digest_a)
    await _refused(
        _lookup(
            vault,
            "external_ref",
            a["external_ref"],
            "order.delivery",
            contact=ContactSpec(brand="tresor"),
        )
    )
    async with vault.engine.connect() as conn:
        assert (await conn.execute(select(contacts))).all() == []
        assert (await conn.execute(select(contact_budgets))).all() == []
    (event,) = await _integrity_events(vault)
    assert event["subject_id"] == sid_b


async def test_tampered_ciphertext_is_an_audited_denial(vault):
    """A ciphertext that fails its tag is not a bare 500 without a trace: the lookup is an
    audited denial with reason `integrity_error`."""
    _, sid = await _customer(vault, 408)
    await _write(vault, sid, name_ct=_flip((await _row(vault, sid)).name_ct))
    await _refused(_lookup(vault, "subject_id", sid))
    (event,) = await _integrity_events(vault)
    assert event["subject_id"] == sid


async def _batch(vault, kind: str, values: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for blob in bulk.resolve_batch(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="account.service",
        identifier_kind=kind,
        identifiers=values,
    ):
        out.extend(json.loads(x) for x in blob.decode().splitlines())
    return out


async def test_bulk_refuses_moved_index_and_tampered_ciphertext_per_line(vault):
    """In a batch, the line whose index was moved and the line whose ciphertext was
    tampered with are `integrity_error` lines (status 500, no fields), each audited; the
    honest line is served."""
    a, sid_a = await _customer(vault, 409)
    b, sid_b = await _customer(vault, 410)
    c, sid_c = await _customer(vault, 411)
    d, sid_d = await _customer(vault, 412)
    await _write(vault, sid_a, email_bidx=None)
    await _write(
        vault,
        sid_b,
        email_bidx=(await _row(vault, sid_a)).email_bidx
        or vault.indexer.digest("email", a["email"]),
    )
    await _write(vault, sid_d, name_ct=_flip((await _row(vault, sid_d)).name_ct))
    lines = await _batch(vault, "email", [a["email"], c["email"], d["email"]])
    assert [line.get("reason") for line in lines] == ["integrity_error", None, "integrity_error"]
    assert [line.get("status") for line in lines] == [500, None, 500]
    assert lines[1]["fields"] == {"email": c["email"], "name": c["name"]}
    text = json.dumps(lines)
    assert b["email"] not in text and b["name"] not in text and d["name"] not in text
    events = await _integrity_events(vault)
    assert sorted(e["subject_id"] for e in events) == sorted([sid_b, sid_d])


async def test_bulk_by_subject_id_refuses_a_replayed_ciphertext(vault):
    """A batch by subject id meets a replayed ciphertext: its line is an audited
    `integrity_error`, the other subject's line is served."""
    _, sid_a = await _customer(vault, 413)
    c, sid_c = await _customer(vault, 414)
    old = (await _row(vault, sid_a)).email_ct
    await rectify_contact(vault, WRITER, sid_a, {"email": "neu.413@example.org"})
    await _write(vault, sid_a, email_ct=old)
    lines = await _batch(vault, "subject_id", [sid_a, sid_c])
    assert (lines[0]["reason"], lines[0]["status"]) == ("integrity_error", 500)
    assert lines[1]["fields"]["email"] == c["email"]
    (event,) = await _integrity_events(vault)
    assert event["subject_id"] == sid_a


async def test_export_of_tampered_data_is_an_audited_denial(vault):
    """The Art. 15 export of a subject whose ciphertext fails to open is refused, and the
    refusal is audited as the export read it was."""
    _, sid = await _customer(vault, 415)
    await _write(vault, sid, phone_ct=_flip((await _row(vault, sid)).phone_ct))
    await _refused(export.build_export(vault, DPO, sid))
    (event,) = await _integrity_events(vault, AuditAction.DPO_EXPORT_READ)
    assert event["subject_id"] == sid and event["decision"] == "deny"


async def test_privacy_centre_read_of_tampered_data_is_an_audited_denial(vault):
    """The privacy centre's own-data view of a tampered subject is refused and audited."""
    from vault.rights import selfservice

    _, sid = await _customer(vault, 416)
    await _write(vault, sid, email_ct=_flip((await _row(vault, sid)).email_ct))
    me = Actor("subject", sid, "req-self")
    await _refused(selfservice.my_data(vault, me, sid))
    (event,) = await _integrity_events(vault, AuditAction.SELF_CONTACT_READ)
    assert event["subject_id"] == sid


async def test_a_write_reseals_every_field_so_no_older_ciphertext_opens(vault):
    """Changing one field raises the revision of all: the older ciphertext of a field that
    was not changed no longer opens either, while the current data reads as before."""
    p, sid = await _customer(vault, 417)
    before = await _row(vault, sid)
    await rectify_contact(vault, WRITER, sid, {"email": "neu.417@example.org"})
    after = await _row(vault, sid)
    assert after.contact_revision == before.contact_revision + 1
    assert after.name_ct != before.name_ct and after.email_bidx != before.email_bidx
    assert after.phone_bidx == before.phone_bidx  # an unchanged value keeps its index
    out = await _lookup(vault, "phone", p["phone"])
    assert out.fields == {"email": "neu.417@example.org", "name": p["name"]}
    await _write(vault, sid, name_ct=before.name_ct)
    await _refused(_lookup(vault, "subject_id", sid))


async def test_lookup_by_index_checks_without_revealing_the_identifier(vault):
    """A lookup by e-mail for a purpose that may not reveal the e-mail still opens it to
    check the index, but the answer holds only the purpose's fields."""
    p, sid = await _customer(vault, 418, "order.delivery")
    out = await _lookup(vault, "email", p["email"], "order.delivery")
    assert out.subject_id == sid and "email" not in out.fields
    assert set(out.fields) == {"name", "phone", "postal_address"}


async def test_an_index_entry_on_an_erased_row_is_an_integrity_failure(vault):
    """An erased subject has no index entries and no key: an entry put onto its row is
    refused as an integrity failure, not answered `subject_erased`."""
    from tests.support.dsar import erase

    a, sid_a = await _customer(vault, 419)
    _, sid_b = await _customer(vault, 420)
    await erase(vault, DPO, sid_b)
    digest_a = (await _row(vault, sid_a)).email_bidx
    await _write(vault, sid_a, email_bidx=None)
    await _write(vault, sid_b, email_bidx=digest_a)
    await _refused(_lookup(vault, "email", a["email"]))
    (event,) = await _integrity_events(vault)
    assert event["subject_id"] == sid_b


async def test_a_write_does_not_launder_a_replayed_ciphertext(vault):
    """A rectification re-seals the other fields only if they open at the current revision:
    over a replayed older ciphertext it refuses and changes nothing, so the old value never
    becomes valid under a new revision."""
    _, sid = await _customer(vault, 421)
    old = (await _row(vault, sid)).name_ct
    await rectify_contact(vault, WRITER, sid, {"phone": "+49301111111"})
    await _write(vault, sid, name_ct=old)
    before = await _row(vault, sid)
    await _refused(rectify_contact(vault, WRITER, sid, {"phone": "+49302222222"}))
    assert await _row(vault, sid) == before


async def test_a_refused_rectification_is_an_audited_denial(vault):
    """A rectification that meets a field that does not open is refused with the vault's
    integrity failure, and the refusal is on record: a committed `client:contact:rectify`
    denial with reason `integrity_error` naming the subject and the fields asked for."""
    _, sid = await _customer(vault, 422)
    await _write(vault, sid, name_ct=_flip((await _row(vault, sid)).name_ct))
    before = await _row(vault, sid)
    await _refused(rectify_contact(vault, WRITER, sid, {"phone": "+49303333333"}))
    assert await _row(vault, sid) == before
    (event,) = await _integrity_events(vault, AuditAction.CONTACT_RECTIFY)
    assert (event["subject_id"], event["decision"], event["fields"]) == (sid, "deny", "phone")
    assert event["actor_id"] == WRITER.id and "+49303333333" not in json.dumps(event, default=str)


async def test_a_refused_rectification_fails_closed_without_its_denial(vault):
    """When the denial cannot be written either, the rectification still changes nothing
    and the caller hears that the vault is unavailable, not a success."""
    from tests.support.faults import audit_down
    from vault.errors import Unavailable

    _, sid = await _customer(vault, 423)
    await _write(vault, sid, name_ct=_flip((await _row(vault, sid)).name_ct))
    before = await _row(vault, sid)
    events = len(await audit_rows(vault))
    async with audit_down(vault):
        with pytest.raises(Unavailable):
            await rectify_contact(vault, WRITER, sid, {"phone": "+49303333333"})
    assert await _row(vault, sid) == before
    assert len(await audit_rows(vault)) == events
