"""Identity changes (vault.subjects.identity): recorded, told to the old address, ending sessions
and restricting sessions through an unconfirmed new e-mail address, on both databases."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.support.factories import WRITER
from tests.support.privacy import audit_rows
from tests.support.self_service import mails, seed_subject, sign_in
from vault import mail_outbox
from vault.audit.events import Actor
from vault.crypto import KeyLabel, derive_key
from vault.errors import AccessDenied, Conflict, NotFound, Unauthenticated, Unavailable
from vault.rights import identity_objection, selfservice
from vault.storage.rights_tables import identity_changes, web_sessions
from vault.subjects import identity_links, identity_review
from vault.subjects import store as subjects

LINK = Actor("subject", "identity-notice-link")
DPO = Actor("dpo", "dpo")


async def _rows(vault) -> list:
    async with vault.engine.connect() as conn:
        query = select(identity_changes).order_by(identity_changes.c.ordinal)
        return (await conn.execute(query)).all()


async def _token_to(vault, address: str) -> str:
    await selfservice.wait_for_mail()
    found = [m for m in mails(vault.settings.outbox_dir) if m["To"] == address.lower()]
    links = re.findall(
        r"/privacy/identity/([A-Za-z0-9_-]+)", found[-1].get_body(("plain",)).get_content()
    )
    assert links, "no link in the notice"
    return links[-1]


async def _restricted(vault, session) -> bool:
    return (await selfservice.session_info(vault, session.token)).restriction is not None


async def test_a_change_and_its_change_back_end_every_session(vault):
    """Changing the e-mail ends the customer's session; changing it back ends the session
    through the new address too, and the original address is then trusted again."""
    sid, p = await seed_subject(vault, 501)
    customer = await sign_in(vault, p["email"])
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "x.501@example.net"})
    other = await sign_in(vault, "x.501@example.net")
    assert await _restricted(vault, other)
    await subjects.rectify_contact(vault, WRITER, sid, {"email": p["email"]})
    for session in (customer, other):
        with pytest.raises(Unauthenticated):
            await selfservice.session_info(vault, session.token)
    again = await sign_in(vault, p["email"])
    assert not await _restricted(vault, again)
    assert await selfservice.session_subject(vault, again.token) == sid


async def test_writing_the_same_address_again_is_no_identity_change(vault):
    """The same e-mail in another spelling, and other fields, change no identity: no row,
    no notice, the session lives on."""
    sid, p = await seed_subject(vault, 502)
    session = await sign_in(vault, p["email"])
    before = len(mails(vault.settings.outbox_dir))
    await subjects.rectify_contact(
        vault, WRITER, sid, {"email": " " + p["email"].upper(), "name": "Neu"}
    )
    assert await _rows(vault) == []
    assert len(mails(vault.settings.outbox_dir)) == before
    assert await selfservice.session_subject(vault, session.token) == sid


async def test_a_phone_change_is_told_and_ends_sessions_but_restricts_none(vault):
    """A new phone number is told to the e-mail address and ends sessions; signing in with
    it mails the code to the unchanged e-mail address, so that session is not restricted."""
    sid, p = await seed_subject(vault, 503)
    session = await sign_in(vault, p["email"])
    await subjects.rectify_contact(vault, WRITER, sid, {"phone": "+49301111503"})
    with pytest.raises(Unauthenticated):
        await selfservice.session_info(vault, session.token)
    await selfservice.wait_for_mail()
    notice = mails(vault.settings.outbox_dir)[-1]
    assert (
        notice["To"] == p["email"].lower()
        and "die Telefonnummer" in notice.get_body(("plain",)).get_content()
    )
    by_phone = await sign_in(vault, "+49301111503", kind="phone")
    assert not await _restricted(vault, by_phone)
    (row,) = await _rows(vault)
    assert (row.kind, row.status) == ("phone", "pending")


async def test_a_second_change_cannot_launder_the_first(vault):
    """After A→X→Y, the link mailed to X cannot confirm X→Y (X was never trusted), and a
    session through Y stays restricted until both changes are approved."""
    sid, p = await seed_subject(vault, 504)
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "x.504@example.net"})
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "y.504@example.net"})
    with pytest.raises(Conflict):
        await identity_links.confirm_by_token(
            vault, LINK, await _token_to(vault, "x.504@example.net")
        )
    session = await sign_in(vault, "y.504@example.net")
    first, second = await _rows(vault)
    await identity_review.approve(vault, DPO, second.id)
    assert await _restricted(vault, session)
    await identity_review.approve(vault, DPO, first.id)
    assert not await _restricted(vault, session)


async def test_an_address_added_where_none_was_waits_for_the_cooling_off(vault, clock):
    """A first e-mail address has no old address to tell: sessions through it stay
    restricted for the cooling-off, then not."""
    sid, _ = await seed_subject(vault, 505, email=None)
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "neu.505@example.org"})
    assert [m for m in mails(vault.settings.outbox_dir) if "/privacy/identity/" in str(m)] == []
    session = await sign_in(vault, "neu.505@example.org")
    with pytest.raises(AccessDenied) as refused:
        await selfservice.session_subject(vault, session.token, operation="selfExport")
    assert refused.value.reason == "identity_change_unconfirmed"
    clock.advance(timedelta(days=7))
    later = await sign_in(vault, "neu.505@example.org")
    assert await selfservice.session_subject(vault, later.token) == sid


async def test_storage_and_audit_hold_digests_and_field_names_only(vault):
    """The change rows hold no address and no token; the audit names the fields, not the
    values, with the identity-relevant action and the notice mail."""
    sid, p = await seed_subject(vault, 506)
    await subjects.rectify_contact(
        vault, WRITER, sid, {"email": "x.506@example.net", "phone": "+49301111506"}
    )
    token = await _token_to(vault, p["email"])
    rows = await _rows(vault)
    assert [r.kind for r in rows] == ["email", "phone"]
    text = repr([tuple(r) for r in rows]).lower()
    for secret in (p["email"].lower(), "x.506@example.net", "1111506", p["phone"][3:], token):
        assert secret not in text
    events = [e for e in await audit_rows(vault) if ":identity:" in e["action"]]
    assert [(e["action"], e["fields"]) for e in events] == [
        ("client:identity:change", "email,phone"),
        ("system:identity:notice_mail", "email"),
    ]
    trail = repr(await audit_rows(vault)).lower()
    assert "x.506@example.net" not in trail and p["email"].lower() not in trail


async def test_a_notice_the_mailer_cannot_take_waits_in_the_outbox(vault):
    """When the mail server is down, the change happens and its notice to the old address
    waits in the mail outbox (retried), so the notice is delayed, not lost."""

    class Broken:
        async def send(self, message):  # noqa: ANN001 - the mailer's send, stubbed
            raise Unavailable("mail server is not reachable")

        async def check(self) -> None:
            return None

    sid, p = await seed_subject(vault, 507)
    session = await sign_in(vault, p["email"])
    vault.mailer = Broken()
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "x.507@example.net"})
    assert len(await _rows(vault)) == 1
    with pytest.raises(Unauthenticated):  # the change ended the sessions
        await selfservice.session_subject(vault, session.token)
    assert (await mail_outbox.counts(vault))["pending"] == 1


async def test_the_link_is_single_use_and_expires(vault, clock):
    """A link confirms once; an unknown or 31-day-old link is not found."""
    sid, p = await seed_subject(vault, 508)
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "x.508@example.net"})
    token = await _token_to(vault, p["email"])
    view = await identity_links.peek_notice(vault, token)
    assert view.kinds == ["email"] and view.subject_id == sid
    (done,) = await identity_links.confirm_by_token(vault, LINK, token)
    assert done.status == "confirmed" and done.resolved_by == LINK.label
    for used in (token, "unknown", "x" * 500):
        with pytest.raises(NotFound):
            await identity_objection.object_by_token(vault, LINK, used)
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "y.508@example.net"})
    late = await _token_to(vault, "x.508@example.net")
    clock.advance(timedelta(days=30))
    with pytest.raises(NotFound):
        await identity_objection.object_by_token(vault, LINK, late)


async def test_a_notice_mailed_before_the_key_derivation_still_opens(vault):
    """A link whose hash was stored under the raw server secret (before the keys were
    derived by label) is still found and confirms its change; a new notice's hash is made
    under the derived key, not the raw secret."""
    sid, p = await seed_subject(vault, 509)
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "x.509@example.net"})
    token = await _token_to(vault, p["email"])
    (row,) = await _rows(vault)
    legacy = hmac.new(
        vault.secrets.client_key, f"tresor.identity.notice.v1\x00{token}".encode(), hashlib.sha256
    ).hexdigest()
    derived = derive_key(vault.secrets.client_key, KeyLabel.IDENTITY_NOTICE)
    assert row.token_hash == hmac.new(derived, token.encode(), hashlib.sha256).hexdigest()
    async with vault.transaction() as conn:
        await conn.execute(update(identity_changes).values(token_hash=legacy))
    assert (await identity_links.peek_notice(vault, token)).subject_id == sid
    (done,) = await identity_links.confirm_by_token(vault, LINK, token)
    assert done.status == "confirmed"
    with pytest.raises(NotFound):
        await identity_links.peek_notice(vault, token)


async def test_erasure_deletes_the_change_rows(vault):
    """Erasing the subject deletes its identity changes (they hold address digests)."""
    from vault.rights import requests as dsar

    sid, _ = await seed_subject(vault, 509, external_ref=None)
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "x.509@example.net"})
    await dsar.create_request(
        vault,
        selfservice.subject_actor(),
        subject_id=sid,
        type="erasure",
        channel="self_service",
        verified=True,
    )
    assert await _rows(vault) == []
    async with vault.engine.connect() as conn:
        live = (
            await conn.execute(select(web_sessions).where(web_sessions.c.ended_at.is_(None)))
        ).all()
    assert live == []
