"""Self-service identity and the subject's own view, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.factories import WRITER, client_key
from tests.support.privacy import audit_rows
from tests.support.self_service import (
    TEST_IP,
    code_mails,
    code_of,
    latest_code,
    seed_subject,
    sign_in,
)
from vault.access import lookup
from vault.access.lookup import LookupDenied
from vault.admin.authentication import ClientAuthenticator
from vault.audit.events import Actor
from vault.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthenticated
from vault.outreach.basket import ContactSpec
from vault.rights import selfservice
from vault.rights.selfservice import subject_actor
from vault.storage.rights_tables import self_service_challenges, web_sessions
from vault.subjects import store as subjects


async def _start(vault, address: str, kind: str = "email", ip: str = TEST_IP) -> None:
    await selfservice.start_challenge(vault, kind=kind, value=address, client_ip=ip)


async def _verify(vault, address: str, code: str, kind: str = "email"):
    return await selfservice.verify_code(
        vault, kind=kind, value=address, code=code, client_ip=TEST_IP
    )


async def _challenges(vault) -> list:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(self_service_challenges))).all()


async def test_a_known_address_gets_a_code_that_opens_a_session(vault):
    """The code goes to the stored address (bilingual), and a correct code opens a session."""
    sid, p = await seed_subject(vault, 101)
    await _start(vault, "  " + p["email"].upper() + " ")
    await selfservice.wait_for_mail()
    (mail,) = code_mails(vault.settings.outbox_dir)
    assert mail["To"] == p["email"].lower()
    body = mail.get_body(("plain",)).get_content()
    assert "Ihr Code" in body and "your code" in body
    session = await _verify(vault, p["email"], code_of(mail))
    assert session.subject_id == sid
    assert session.expires_at == vault.clock.now() + timedelta(minutes=60)
    assert await selfservice.session_subject(vault, session.token) == sid


async def test_an_unknown_address_gets_the_same_outcome_and_no_mail(vault):
    """An unknown address returns like a known one, sends nothing, and any code then fails
    with the very error a wrong code gets."""
    _, p = await seed_subject(vault, 102)
    assert await _start(vault, "niemand@example.org") is None
    await selfservice.wait_for_mail()
    assert code_mails(vault.settings.outbox_dir) == []
    rows = await _challenges(vault)
    assert len(rows) == 1 and rows[0].subject_id is None and rows[0].code_hash

    with pytest.raises(Unauthenticated) as unknown:
        await _verify(vault, "niemand@example.org", "123456")
    await _start(vault, p["email"])
    code = await latest_code(vault)
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(Unauthenticated) as bad:
        await _verify(vault, p["email"], wrong)
    with pytest.raises(Unauthenticated) as never:
        await _verify(vault, "nie.angefragt@example.org", "123456")
    assert str(unknown.value) == str(bad.value) == str(never.value)
    assert unknown.value.reason == bad.value.reason == never.value.reason == "invalid_code"


async def test_a_malformed_address_is_invalid_input(vault):
    """A malformed address is refused as input, which says nothing about existence."""
    with pytest.raises(InvalidInput):
        await _start(vault, "not-an-address")
    with pytest.raises(InvalidInput):
        await _start(vault, "x@example.org", kind="external_ref")
    assert await _challenges(vault) == []


async def test_phone_sign_in_mails_the_code_to_the_stored_email(vault):
    """Signing in by phone sends the code to the stored e-mail; without one no mail is sent
    (the code goes by SMS instead: test_selfservice_sms.py)."""
    sid, p = await seed_subject(vault, 103)
    session = await sign_in(vault, p["phone"], kind="phone")
    assert session.subject_id == sid
    (mail,) = code_mails(vault.settings.outbox_dir)
    assert mail["To"] == p["email"].lower()

    phone_only = "+4930555123456"
    await subjects.create_subject(vault, WRITER, {"phone": phone_only, "name": "Ohne Mail"})
    await _start(vault, phone_only, kind="phone")
    await selfservice.wait_for_mail()
    assert len(code_mails(vault.settings.outbox_dir)) == 1


async def test_a_code_expires_after_ten_minutes(vault, clock):
    """A code works until its expiry and not from then on (injected clock)."""
    sid, p = await seed_subject(vault, 104)
    await _start(vault, p["email"])
    code = await latest_code(vault)
    clock.advance(timedelta(minutes=10))
    with pytest.raises(Unauthenticated):
        await _verify(vault, p["email"], code)

    await _start(vault, p["email"])
    code = await latest_code(vault)
    clock.advance(timedelta(minutes=9, seconds=59))
    assert (await _verify(vault, p["email"], code)).subject_id == sid


async def test_a_code_allows_five_attempts(vault):
    """After five wrong tries the right code no longer works; before that it does."""
    sid, p = await seed_subject(vault, 105)
    await _start(vault, p["email"])
    code = await latest_code(vault)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            await _verify(vault, p["email"], wrong)
    assert (await _verify(vault, p["email"], code)).subject_id == sid

    await _start(vault, p["email"])
    code = await latest_code(vault)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await _verify(vault, p["email"], wrong)
    with pytest.raises(Unauthenticated):
        await _verify(vault, p["email"], code)


async def test_a_code_is_single_use_and_voids_the_others(vault):
    """A used code fails the second time, and the address's other live codes die with it."""
    _, p = await seed_subject(vault, 106)
    await _start(vault, p["email"])
    first = await latest_code(vault)
    await _start(vault, p["email"])
    second = await latest_code(vault)
    await _verify(vault, p["email"], f"{first[:3]} {first[3:]}")  # typed with a space
    for code in (first, second):
        with pytest.raises(Unauthenticated):
            await _verify(vault, p["email"], code)


async def test_codes_per_address_are_limited_to_five_an_hour(vault, clock):
    """The sixth code within an hour is refused with a Retry-After, for known and unknown
    addresses alike; an hour later it works again."""
    _, p = await seed_subject(vault, 107)
    for address in (p["email"], "unbekannt@example.org"):
        for i in range(5):
            await _start(vault, address, ip=f"198.51.100.{i}")
        with pytest.raises(RateLimited) as limited:
            await _start(vault, address, ip="198.51.100.99")
        assert 3500 < limited.value.retry_after <= 3601
    await selfservice.wait_for_mail()
    assert len(code_mails(vault.settings.outbox_dir)) == 5
    clock.advance(timedelta(hours=1, seconds=1))
    await _start(vault, p["email"])


async def test_codes_per_client_ip_are_limited_to_twenty_an_hour(vault, clock):
    """One client IP may ask for twenty codes an hour, whatever the addresses."""
    for i in range(20):
        await _start(vault, f"kunde{i}@example.org", ip="192.0.2.1")
    with pytest.raises(RateLimited):
        await _start(vault, "kunde99@example.org", ip="192.0.2.1")
    await _start(vault, "kunde99@example.org", ip="192.0.2.2")
    clock.advance(timedelta(minutes=61))
    await _start(vault, "kunde98@example.org", ip="192.0.2.1")


async def test_a_session_ends_after_fifteen_idle_minutes_and_can_be_ended(vault, clock):
    """Each request keeps a session alive for fifteen more minutes; fifteen without one end
    it for good; sign-out ends it at once; garbage is refused."""
    sid, p = await seed_subject(vault, 108)
    session = await sign_in(vault, p["email"])
    clock.advance(timedelta(minutes=14, seconds=59))
    assert await selfservice.session_subject(vault, session.token) == sid
    clock.advance(timedelta(minutes=14, seconds=59))
    assert await selfservice.session_subject(vault, session.token) == sid
    clock.advance(timedelta(minutes=15))
    with pytest.raises(Unauthenticated):
        await selfservice.session_subject(vault, session.token)
    clock.advance(timedelta(minutes=-1))  # an ended session stays ended
    with pytest.raises(Unauthenticated):
        await selfservice.session_subject(vault, session.token)
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(web_sessions))).one()
    assert (row.kind, row.ended_why) == ("privacy", "idle")

    other = await sign_in(vault, p["email"])
    await selfservice.end_session(vault, other.token)
    await selfservice.end_session(vault, other.token)  # idempotent
    for token in (other.token, "", "x" * 500, "nonsense"):
        with pytest.raises(Unauthenticated):
            await selfservice.session_subject(vault, token)


async def test_a_session_ends_after_its_absolute_hour_however_active(vault, clock):
    """A privacy-centre session in use ends after TRESOR_SELF_SESSION_MINUTES (an hour)."""
    sid, p = await seed_subject(vault, 110)
    session = await sign_in(vault, p["email"])
    for _ in range(5):
        clock.advance(timedelta(minutes=11))
        assert await selfservice.session_subject(vault, session.token) == sid
    clock.advance(timedelta(minutes=5))
    with pytest.raises(Unauthenticated):
        await selfservice.session_subject(vault, session.token)
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(web_sessions))).one()
    assert row.ended_why == "expired"


async def test_codes_and_tokens_are_stored_only_as_keyed_hashes(vault):
    """Neither the code, the session token, the address nor the IP is stored in plaintext."""
    _, p = await seed_subject(vault, 109)
    await _start(vault, p["email"])
    code = await latest_code(vault)
    session = await _verify(vault, p["email"], code)
    async with vault.engine.connect() as conn:
        stored = [
            *map(tuple, (await conn.execute(select(self_service_challenges))).all()),
            *map(tuple, (await conn.execute(select(web_sessions))).all()),
        ]
    text = repr(stored)
    for secret in (code, session.token, p["email"], p["email"].lower(), TEST_IP):
        assert secret not in text


async def test_my_data_shows_contact_consents_and_access_log_and_is_audited(vault):
    """The view holds the contact data, consents with titles, touchpoint and expiry, and
    every lookup of the subject; reading it writes a self-read audit event."""
    sid, p = await seed_subject(vault, 110)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery", "offers.email"])
    info = await ClientAuthenticator(vault, 0).authenticate(shop)
    assert info is not None
    actor = Actor("client", "shop")
    await lookup.lookup(
        vault,
        actor,
        info.purposes,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifier=sid,
    )
    with pytest.raises(LookupDenied):
        await lookup.lookup(
            vault,
            actor,
            info.purposes,
            purpose_id="offers.email",
            identifier_kind="subject_id",
            identifier=sid,
            contact=ContactSpec(brand="tresor"),
        )
    view = await selfservice.my_data(vault, subject_actor("req-1"), sid)
    assert view.contact["email"] == p["email"].lower()
    assert view.contact["postal_address"]["city"] == p["postal_address"]["city"]
    sms = next(c for c in view.consents if c.purpose == "offers.sms")
    assert (sms.title_de, sms.title_en) == ("Angebote per SMS", "Offers by text message")
    assert sms.touchpoint == "shop.counter" and sms.withdrawable
    assert sms.given_at == vault.clock.now()
    assert sms.expires_at == vault.clock.now() + timedelta(days=365)
    delivery = next(c for c in view.consents if c.purpose == "order.delivery")
    assert delivery.basis == "contract" and not delivery.withdrawable
    assert [(a.client, a.purpose, a.decision) for a in view.access_log] == [
        ("shop", "offers.email", "deny"),
        ("shop", "order.delivery", "allow"),
    ]
    assert view.access_log[1].fields == ["name", "phone", "postal_address"]
    assert view.access_log[1].title_en == "Delivery of your orders"

    reads = [e for e in await audit_rows(vault) if e["action"] == "subject:contact:read"]
    assert len(reads) == 1
    assert reads[0]["subject_id"] == sid and reads[0]["actor_type"] == "subject"
    assert reads[0]["request_id"] == "req-1"


async def test_withdrawing_is_limited_to_own_consents_and_effective_at_once(vault):
    """A subject withdraws its own consent at once; someone else's is not found and a
    contract basis is not withdrawn here."""
    sid, _ = await seed_subject(vault, 111)
    other_sid, _ = await seed_subject(vault, 112)
    mine = await selfservice.my_data(vault, subject_actor(), sid)
    theirs = await selfservice.my_data(vault, subject_actor(), other_sid)
    their_sms = next(c for c in theirs.consents if c.purpose == "offers.sms")
    sms = next(c for c in mine.consents if c.purpose == "offers.sms")
    contract = next(c for c in mine.consents if c.purpose == "order.delivery")

    with pytest.raises(NotFound):
        await selfservice.withdraw_consent(vault, subject_actor(), sid, their_sms.id)
    with pytest.raises(Conflict):
        await selfservice.withdraw_consent(vault, subject_actor(), sid, contract.id)
    record = await selfservice.withdraw_consent(vault, subject_actor(), sid, sms.id)
    assert record.status == "withdrawn"

    with pytest.raises(LookupDenied) as denied:
        await lookup.lookup(
            vault,
            Actor("client", "sms"),
            frozenset({"offers.sms"}),
            purpose_id="offers.sms",
            identifier_kind="subject_id",
            identifier=sid,
            contact=ContactSpec(brand="tresor"),
        )
    assert denied.value.reason == "consent_withdrawn"
    theirs_after = await selfservice.my_data(vault, subject_actor(), other_sid)
    assert next(c for c in theirs_after.consents if c.id == their_sms.id).status == "granted"


async def test_the_audit_trail_names_subjects_never_addresses(vault):
    """Start, verify (right and wrong), read and sign-out are audited with the subject id
    where known and without any address, code or IP."""
    sid, p = await seed_subject(vault, 113)
    await _start(vault, "fremd@example.org")
    with pytest.raises(Unauthenticated):
        await _verify(vault, p["email"], "999999")
    session = await sign_in(vault, p["email"])
    await selfservice.my_data(vault, subject_actor(), sid)
    await selfservice.end_session(vault, session.token)
    events = [e for e in await audit_rows(vault) if e["action"].startswith("subject:")]
    actions = [(e["action"], e["decision"], e["subject_id"], e["reason"]) for e in events]
    assert actions == [
        ("subject:session:start", "deny", None, "subject_not_found"),
        ("subject:session:verify", "deny", None, "invalid_code"),
        ("subject:session:start", "allow", sid, None),
        ("subject:session:verify", "allow", sid, None),
        ("subject:contact:read", "allow", sid, None),
        ("subject:session:end", "allow", sid, None),
    ]
    text = repr(await audit_rows(vault)).lower()
    for needle in (p["email"].lower(), "fremd@example.org", TEST_IP, p["phone"][3:]):
        assert needle not in text


async def test_an_erased_subject_cannot_sign_in_or_keep_a_session(vault):
    """After erasure the session ends and the address no longer receives codes."""
    from vault.rights import requests as dsar

    sid, p = await seed_subject(vault, 114, external_ref=None)
    session = await sign_in(vault, p["email"])
    await dsar.create_request(
        vault,
        subject_actor(),
        subject_id=sid,
        type="erasure",
        channel="self_service",
        verified=True,
    )
    with pytest.raises(Unauthenticated):
        await selfservice.session_subject(vault, session.token)
    before = len(code_mails(vault.settings.outbox_dir))
    await _start(vault, p["email"])
    await selfservice.wait_for_mail()
    assert len(code_mails(vault.settings.outbox_dir)) == before


async def test_purge_removes_only_challenges_and_sessions_that_are_of_no_use(vault, clock):
    """Expired challenges outside the rate window and dead sessions are deleted; a live
    session and the last hour's challenges (they still count for rate limits) stay."""
    sid, p = await seed_subject(vault, 115)
    ended = await sign_in(vault, p["email"])
    await selfservice.end_session(vault, ended.token)
    clock.advance(timedelta(minutes=61))
    expired = await sign_in(vault, p["email"])
    clock.advance(timedelta(minutes=16))
    live = await sign_in(vault, p["email"])
    await _start(vault, "niemand@example.org")
    assert await selfservice.purge_expired(vault) == (1, 2)
    assert await selfservice.session_subject(vault, live.token) == sid
    assert len(await _challenges(vault)) == 3
    assert expired.token != live.token
