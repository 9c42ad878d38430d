"""Sign-in codes are limited per customer across e-mail and phone, and wrong codes lock the
customer's sign-in for escalating periods (security finding 7), on both databases. The lock
never locks out the customer: while it holds, a code request mails a one-time sign-in link
to the stored e-mail address instead, which a guesser cannot use."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, select

from tests.support.factories import WRITER
from tests.support.privacy import audit_rows
from tests.support.self_service import TEST_IP, code_mails, latest_code, mails, seed_subject
from vault.clock import as_utc
from vault.errors import AccessDenied, RateLimited, Unauthenticated
from vault.rights import selfservice, signin_limits
from vault.rights.selfservice import challenges
from vault.storage.rights_tables import self_service_challenges, web_sessions
from vault.subjects import store as subjects

_LINK = re.compile(r"/privacy/sign-in-link/([A-Za-z0-9_-]+)")


async def _start(vault, kind: str, address: str, ip: str = TEST_IP) -> None:
    await selfservice.start_challenge(vault, kind=kind, value=address, client_ip=ip)


async def _verify(vault, kind: str, address: str, code: str):
    return await selfservice.verify_code(
        vault, kind=kind, value=address, code=code, client_ip=TEST_IP
    )


async def _mailed(vault) -> int:
    await selfservice.wait_for_mail()
    return len(code_mails(vault.settings.outbox_dir))


def _other(code: str, step: int = 1) -> str:
    return f"{(int(code) + step) % 1_000_000:06d}"


async def _fail(vault, kind: str, address: str, times: int) -> None:
    """`times` wrong codes for the address; each counts while a live code is there."""
    for i in range(times):
        with pytest.raises(Unauthenticated):
            await _verify(vault, kind, address, f"{900_000 + i:06d}")


async def _wrong_codes(vault, kind: str, address: str, times: int) -> None:
    """`times` counted wrong codes: a fresh code before every fifth (a code allows five)."""
    for i in range(times):
        if i % 5 == 0:
            await _start(vault, kind, address, ip=f"198.51.100.{100 + i}")
        await _fail(vault, kind, address, 1)


async def _lockouts(vault) -> list:
    return [e for e in await audit_rows(vault) if e["action"] == "system:session:lockout"]


async def test_codes_for_one_customer_are_limited_across_email_and_phone(vault):
    """Asking by e-mail and by phone in turn, a customer receives at most five codes an
    hour; the answers to the further requests do not change (no 429, no error)."""
    _, p = await seed_subject(vault, 401)
    for i in range(8):
        kind = "email" if i % 2 == 0 else "phone"
        await _start(vault, kind, p[kind], ip=f"198.51.100.{i}")
    assert await _mailed(vault) == 5


async def test_wrong_codes_across_channels_lock_the_customer_out(vault):
    """After ten wrong codes, tried by e-mail and by phone, even a correct live code is
    refused with the ordinary wrong-code error."""
    sid, p = await seed_subject(vault, 402)
    await _start(vault, "phone", p["phone"])
    phone_code = await latest_code(vault)
    await _start(vault, "email", p["email"])
    await _fail(vault, "email", p["email"], 5)
    await _fail(vault, "phone", p["phone"], 4)
    await _start(vault, "email", p["email"], ip="198.51.100.2")
    await _fail(vault, "email", p["email"], 1)
    with pytest.raises(Unauthenticated) as refused:
        await _verify(vault, "phone", p["phone"], phone_code)
    assert refused.value.reason == "invalid_code"
    locks = [e for e in await audit_rows(vault) if e["action"] == "system:session:lockout"]
    assert [(e["subject_id"], e["reason"]) for e in locks] == [(sid, "too_many_wrong_codes")]


async def test_the_lockout_escalates_from_fifteen_minutes_to_an_hour_to_a_day(vault, clock):
    """Each further ten wrong codes lock for longer: 15 minutes, 1 hour, 24 hours; no code
    is mailed while locked, and a correct code works once the lock has ended."""
    sid, p = await seed_subject(vault, 403)
    for minutes in (15, 60, 24 * 60):
        await _wrong_codes(vault, "email", p["email"], 10)
        sent = await _mailed(vault)
        clock.advance(timedelta(minutes=minutes) - timedelta(seconds=1))
        await _start(vault, "email", p["email"], ip="198.51.100.50")
        assert await _mailed(vault) == sent, f"a code was mailed during the {minutes}-min lock"
        clock.advance(timedelta(hours=1, seconds=1))  # the lock is over, the code windows too
    periods = []
    for lockout in await _lockouts(vault):
        detail = json.loads(lockout["detail"])
        until = datetime.fromisoformat(detail["until"])
        periods.append((detail["level"], until - as_utc(lockout["at"])))
    assert periods == [(n, timedelta(minutes=m)) for n, m in ((1, 15), (2, 60), (3, 1440))]
    await _start(vault, "email", p["email"])
    assert (await _verify(vault, "email", p["email"], await latest_code(vault))).subject_id == sid


async def test_a_successful_sign_in_or_a_quiet_day_clears_the_count(vault, clock):
    """Nine wrong codes, a correct one, then nine more do not lock; nor do nine, a day
    without a wrong code, and nine more."""
    sid, p = await seed_subject(vault, 404)
    await _wrong_codes(vault, "email", p["email"], 9)
    await _start(vault, "email", p["email"])
    assert (await _verify(vault, "email", p["email"], await latest_code(vault))).subject_id == sid
    await _wrong_codes(vault, "phone", p["phone"], 9)
    clock.advance(timedelta(days=1, seconds=1))
    await _wrong_codes(vault, "email", p["email"], 9)
    await _start(vault, "email", p["email"])
    assert (await _verify(vault, "email", p["email"], await latest_code(vault))).subject_id == sid
    assert await _lockouts(vault) == []


async def test_an_hour_of_guessing_across_both_channels_is_bounded(vault, clock, monkeypatch):
    """An attacker who asks for codes by e-mail and by phone every minute and guesses five
    times on each (skipping the locked periods, the worst case) gets twenty guesses in an
    hour: a code that would be the twenty-first guess is never hit, the twentieth is."""
    monkeypatch.setattr(challenges, "_new_code", lambda: "000020")
    assert await _attack_for_an_hour(vault, clock, seed=405) is None
    monkeypatch.setattr(challenges, "_new_code", lambda: "000019")
    assert await _attack_for_an_hour(vault, clock, seed=406) == 19


async def _attack_for_an_hour(vault, clock, seed: int) -> int | None:
    """Guess 000000, 000001, ... across both channels for an hour; the guess that opened a
    session, or None. Guesses while the sign-in is locked are skipped (the attacker is
    assumed to know, which it cannot: the worst case)."""
    from sqlalchemy import select

    from vault.storage.rights_tables import self_service_lockouts

    sid, p = await seed_subject(vault, seed)
    guess = 0
    start = clock.now()
    while clock.now() < start + timedelta(hours=1):
        async with vault.engine.connect() as conn:
            lock = (
                await conn.execute(
                    select(self_service_lockouts.c.locked_until).where(
                        self_service_lockouts.c.lock_key == sid
                    )
                )
            ).scalar_one_or_none()
        if lock is None or as_utc(lock) <= clock.now():
            for kind in ("email", "phone"):
                try:
                    await _start(vault, kind, p[kind], ip=f"198.51.{guess % 250}.{seed % 250}")
                except RateLimited:
                    pass
                for _ in range(5):
                    try:
                        await _verify(vault, kind, p[kind], f"{guess:06d}")
                        return guess
                    except Unauthenticated:
                        guess += 1
        clock.advance(timedelta(minutes=1))
    return None


# -- the customer's way in while locked: a one-time sign-in link ----------------------------


async def _lock_by_guesses(vault, address: str) -> str:
    """The attacker: two codes' worth of wrong guesses lock sign-in by code. Returns the
    (right) code of the last mail, still live when the lock starts."""
    for _ in range(2):
        await _start(vault, "email", address)
        code = await latest_code(vault)
        for i in range(1, 6):
            with pytest.raises(Unauthenticated):
                await _verify(vault, "email", address, f"{(int(code) + i) % 1_000_000:06d}")
    return code


def _link_mails(vault) -> list:
    return [
        m
        for m in mails(vault.settings.outbox_dir)
        if _LINK.search(m.get_body(("plain",)).get_content())
    ]


async def _link(vault) -> str:
    await selfservice.wait_for_mail()
    found = _link_mails(vault)
    assert found, "no sign-in link was mailed"
    return _LINK.search(found[-1].get_body(("plain",)).get_content()).group(1)


async def test_a_locked_customer_signs_in_with_the_mailed_link_once(vault):
    """During the lock even the right code is refused and a code request makes no code;
    it mails the stored address a bilingual link instead, which opens a session once and
    leaves the lock in place, and both steps are audited like code sign-ins."""
    sid, p = await seed_subject(vault, 1101)
    right = await _lock_by_guesses(vault, p["email"])
    with pytest.raises(Unauthenticated):
        await _verify(vault, "email", p["email"], right)
    codes_before = len(code_mails(vault.settings.outbox_dir))
    await _start(vault, "email", p["email"])
    token = await _link(vault)
    (mail,) = _link_mails(vault)
    assert mail["To"] == p["email"].lower()
    assert "Anmeldelink" in mail["Subject"] and "sign-in link" in mail["Subject"]
    assert (
        "mit diesem Link" in mail.get_body(("plain",)).get_content()
        and "with this link" in mail.get_body(("plain",)).get_content()
    )
    assert len(code_mails(vault.settings.outbox_dir)) == codes_before
    assert len(token) >= 43  # 32 random bytes: >= 256 bits, nothing to guess

    session = await selfservice.open_link_session(vault, token)
    assert session.subject_id == sid
    assert await selfservice.session_subject(vault, session.token) == sid
    with pytest.raises(Unauthenticated):
        await selfservice.open_link_session(vault, token)
    with pytest.raises(Unauthenticated):
        await _verify(vault, "email", p["email"], right)
    async with vault.engine.connect() as conn:
        assert await signin_limits.locked_until_in(conn, sid, vault.clock.now()) is not None
    events = [
        (e["action"], e["decision"], e["reason"], e["subject_id"])
        for e in await audit_rows(vault)
        if "link" in (e["detail"] or "")
    ]
    assert events == [
        ("subject:session:start", "allow", None, sid),
        ("subject:session:verify", "allow", None, sid),
        ("subject:session:verify", "deny", "invalid_link", sid),
    ]


async def test_a_link_is_short_lived_and_ends_with_an_address_change(vault, clock):
    """A link older than the code validity opens nothing, nor does one mailed to an address
    that has been changed since; an unknown token is refused the same way."""
    sid, p = await seed_subject(vault, 1102)
    await _lock_by_guesses(vault, p["email"])
    await _start(vault, "email", p["email"])
    old = await _link(vault)
    clock.advance(timedelta(minutes=vault.settings.otp_minutes, seconds=1))
    with pytest.raises(Unauthenticated):
        await selfservice.open_link_session(vault, old)
    await _start(vault, "email", p["email"])
    fresh = await _link(vault)
    assert fresh != old
    await subjects.rectify_contact(vault, WRITER, sid, {"email": "neu.1102@example.net"})
    for token in (fresh, "x" * 43, "", "y" * 500):
        with pytest.raises(Unauthenticated):
            await selfservice.open_link_session(vault, token)
    async with vault.engine.connect() as conn:
        assert (await conn.execute(select(web_sessions))).all() == []


async def test_a_link_session_through_an_unconfirmed_new_address_is_restricted(vault):
    """The link goes to the address stored now; after a change of it that is not confirmed,
    the link's session is restricted exactly like a code session through that address."""
    sid, _ = await seed_subject(vault, 1103)
    new = "neu.1103@example.net"
    await subjects.rectify_contact(vault, WRITER, sid, {"email": new})
    await _lock_by_guesses(vault, new)
    await _start(vault, "email", new)
    session = await selfservice.open_link_session(vault, await _link(vault))
    info = await selfservice.session_info(vault, session.token)
    assert info.restriction is not None and info.channel == "link"
    with pytest.raises(AccessDenied):
        await selfservice.session_subject(vault, session.token)


async def test_locked_known_and_unknown_addresses_run_the_same_statements(vault):
    """Asking while locked runs the very statements for a customer's address as for an
    address nobody has (locked alike by its digest), and mails nothing for the latter."""
    _, p = await seed_subject(vault, 1104)
    unknown = "niemand.1104@example.org"
    await _lock_by_guesses(vault, p["email"])
    await _start(vault, "email", unknown)  # a challenge row, so wrong codes count for it too
    for i in range(10):
        if i == 5:
            await _start(vault, "email", unknown)
        with pytest.raises(Unauthenticated):
            await _verify(vault, "email", unknown, f"{i:06d}")
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001 - SQLAlchemy's event signature
        # The mail to a known address is queued and sent by a background task after the
        # answer (vault.mail_outbox), as it was sent before the outbox: not the request's
        # own statements, and it may interleave with them on PostgreSQL.
        if "mail_outbox" not in statement:
            seen.append(statement)

    statements = {}
    event.listen(vault.engine.sync_engine, "before_cursor_execute", record)
    try:
        for address in (p["email"], unknown):
            seen.clear()
            await _start(vault, "email", address)
            statements[address] = list(seen)
    finally:
        event.remove(vault.engine.sync_engine, "before_cursor_execute", record)
    assert statements[p["email"]] == statements[unknown] and statements[unknown]
    await selfservice.wait_for_mail()
    assert [m["To"] for m in _link_mails(vault)] == [p["email"].lower()]


async def test_a_link_token_is_stored_only_as_a_keyed_hash(vault):
    """Neither the link's token nor the session it opened is in any stored row."""
    _, p = await seed_subject(vault, 1105)
    await _lock_by_guesses(vault, p["email"])
    await _start(vault, "email", p["email"])
    token = await _link(vault)
    session = await selfservice.open_link_session(vault, token)
    async with vault.engine.connect() as conn:
        stored = [
            *(await conn.execute(select(self_service_challenges))).all(),
            *(await conn.execute(select(web_sessions))).all(),
        ]
    text = repr(stored) + repr(await audit_rows(vault))
    assert token not in text and session.token not in text
