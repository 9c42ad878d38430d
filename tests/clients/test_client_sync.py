"""The five things integrators do most, with the sync client against a served Tresor: create
a subject with a consent, look it up, a batch, rectify with If-Match, withdraw; and the
refusals, each an exception with status, type and reason."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from tresor_client import (
    BatchLookupRequest,
    ConsentCreate,
    ContactIn,
    ContactPatch,
    Denied,
    EvidenceIn,
    InvalidRequest,
    LookupRequest,
    NotFound,
    PreconditionFailed,
    PreferencesUpdate,
    QuietTimesIn,
    SubjectCreate,
    Tresor,
    Unauthorized,
)

from tests.clients.conftest import Server

SMS_EVIDENCE = EvidenceIn(
    touchpoint="shop.counter",
    method="signature",
    notice_version="2026-10",
    language="de",
    explicit=True,
)


#: offers.sms is a commercial purpose: a lookup announces its contact (20 of the 25 points
#: a month, so one such lookup per customer and test).
SMS = ContactIn(brand="tresor", channel="sms", type="commercial")


def phone() -> str:
    return "+49151" + "".join(secrets.choice("0123456789") for _ in range(8))


@pytest.fixture
def crm(server: Server) -> Iterator[Tresor]:
    with Tresor(server.base, server.writer) as client:
        yield client


@pytest.fixture
def shop(server: Server) -> Iterator[Tresor]:
    with Tresor(server.base, server.shop) as client:
        yield client


def _customer(crm: Tresor, number: str, name: str = "Erika Muster") -> str:
    """A subject with an SMS-offers consent (granted at once: no double opt-in)."""
    subject_id = crm.create_subject(SubjectCreate(phone=number, name=name)).body.subject_id
    crm.record_consent(subject_id, ConsentCreate(purpose="offers.sms", evidence=SMS_EVIDENCE))
    return subject_id


def test_create_subject_and_record_consent(crm: Tresor):
    """The subject's id and contact ETag come back, and the consent is granted and listed."""
    created = crm.create_subject(SubjectCreate(phone=phone(), name="Erika Muster"))
    assert created.etag and created.etag.startswith('"contact-r')
    assert not created.replayed
    consent = crm.record_consent(
        created.body.subject_id, ConsentCreate(purpose="offers.sms", evidence=SMS_EVIDENCE)
    ).body
    assert (consent.status, consent.basis) == ("granted", "consent")
    listed = crm.list_consents(created.body.subject_id).body.items
    assert [(c.consent_id, c.purpose, c.evidence.touchpoint) for c in listed] == [
        (consent.consent_id, "offers.sms", "shop.counter")
    ]


def test_lookup_returns_the_fields_and_the_contacts_etag(crm: Tresor, shop: Tresor):
    """A purpose-checked lookup by phone gives the allowed fields and an ETag for If-Match."""
    number = phone()
    subject_id = _customer(crm, number)
    found = shop.lookup(
        LookupRequest(purpose="offers.sms", phone=number, fields=["name"], contact=SMS)
    )
    assert found.body.subject_id == subject_id
    assert found.body.fields == {"name": "Erika Muster"}
    assert found.body.basis.type == "consent"
    assert found.etag and found.etag.startswith('"contact-r')


@pytest.mark.parametrize("idempotent", [True, False], ids=["with-key", "streamed"])
def test_batch_yields_one_typed_line_per_identifier(crm: Tresor, shop: Tresor, idempotent):
    """Found subjects carry fields, an unknown one a denial line; in the order sent."""
    numbers = [phone(), phone()]
    ids = [_customer(crm, n, name=f"Kunde {i}") for i, n in enumerate(numbers)]
    request = BatchLookupRequest(
        purpose="offers.sms",
        phones=[numbers[0], phone(), numbers[1]],
        fields=["name"],
        contact=SMS,
    )
    lines = sorted(shop.lookup_batch(request, idempotent=idempotent), key=lambda x: x.i or 0)
    assert [line.i for line in lines] == [0, 1, 2]
    assert [line.subject_id for line in (lines[0], lines[2])] == ids
    assert lines[0].fields == {"name": "Kunde 0"}
    assert lines[0].contact is not None and lines[0].contact.points > 0
    assert lines[1].subject_id is None and lines[1].reason and lines[1].status == 404


def test_rectify_with_the_lookups_etag_and_a_stale_one_refused(crm: Tresor, shop: Tresor):
    """The lookup's ETag lets the CRM rectify once; the same ETag again is a 412 that changes
    nothing, and the 412 carries the current state."""
    number = phone()
    subject_id = _customer(crm, number)
    crm.record_consent(subject_id, ConsentCreate(purpose="order.delivery", reference="order 1"))
    etag = shop.lookup(LookupRequest(purpose="order.delivery", phone=number)).etag
    assert etag
    patched = crm.rectify_contact(subject_id, ContactPatch(name="Erika Musterfrau"), if_match=etag)
    assert patched.body.changed == ["name"]
    assert patched.etag and patched.etag != etag
    with pytest.raises(PreconditionFailed) as refused:
        crm.rectify_contact(subject_id, ContactPatch(name="Erika Nochmal"), if_match=etag)
    assert (refused.value.status, refused.value.reason) == (412, "precondition_failed")
    found = shop.lookup(LookupRequest(purpose="order.delivery", phone=number, fields=["name"]))
    assert found.body.fields == {"name": "Erika Musterfrau"}
    assert found.etag == patched.etag


def test_rectify_without_etag_is_refused_before_sending(crm: Tresor):
    """A conditional update needs if_match: the client does not send one without it."""
    with pytest.raises(ValueError, match="if_match"):
        crm.rectify_contact(
            "00000000-0000-4000-8000-000000000000", ContactPatch(name="X"), if_match=""
        )


def test_preferences_take_the_etag_of_the_read(crm: Tresor):
    """The read (its ETag) sets the preferences once; the old ETag then gets a 412."""
    subject_id = _customer(crm, phone())
    read = crm.get_preferences(subject_id)
    assert read.etag == '"preferences-r0"'
    update = PreferencesUpdate(
        timezone="Europe/Berlin",
        preferred_channels={"commercial": "sms"},
        quiet={"sms": QuietTimesIn(start="20:00", end="08:00")},
        evidence=EvidenceIn(
            touchpoint="hotline.inbound",
            method="recorded_call",
            notice_version="prefs-2026-11",
            language="de",
        ),
    )
    written = crm.set_preferences(subject_id, update, if_match=read)  # its etag
    assert (written.body.version, written.body.preferred_channels) == (1, {"commercial": "sms"})
    assert written.etag == '"preferences-r1"'
    with pytest.raises(PreconditionFailed):
        crm.set_preferences(subject_id, update, if_match=read.etag)


def test_withdraw_ends_the_consent_and_the_lookup_is_denied(crm: Tresor, shop: Tresor):
    """After a withdrawal the lookup is refused with `reason` consent_withdrawn."""
    number = phone()
    subject_id = _customer(crm, number)
    (consent,) = crm.list_consents(subject_id).body.items
    withdrawn = crm.withdraw_consent(subject_id, consent.consent_id).body
    assert withdrawn.status == "withdrawn" and withdrawn.withdrawn_at is not None
    with pytest.raises(Denied) as denied:
        shop.lookup(LookupRequest(purpose="offers.sms", phone=number, contact=SMS))
    assert denied.value.status == 403
    assert denied.value.reason == "consent_withdrawn"
    assert denied.value.type.startswith("urn:tresor:problem:denied")


def test_refusals_are_exceptions_with_status_type_and_reason(server: Server, crm: Tresor):
    """401 for an unknown key, 400/422 naming the field, 404 for an unknown subject; no
    message repeats the contact data sent."""
    with Tresor(server.base, "not-a-key") as stranger, pytest.raises(Unauthorized) as e401:
        stranger.list_consents("00000000-0000-4000-8000-000000000000")
    assert e401.value.status == 401
    with pytest.raises(InvalidRequest) as bad:
        crm.create_subject(SubjectCreate(email="erika-at-example.org"))
    assert bad.value.status in (400, 422) and bad.value.type.startswith("urn:tresor:problem")
    assert "erika-at-example.org" not in str(bad.value) + repr(bad.value.problem)
    with pytest.raises(NotFound) as missing:
        crm.list_consents("00000000-0000-4000-8000-000000000000")
    assert missing.value.status == 404
