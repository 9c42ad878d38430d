"""Sign-in by SMS code for customers known only by a phone number (both databases): the code
goes to the stored number through the SMS gateway, under the same limits as mailed codes,
and the gateway is probed alike for known and unknown numbers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER
from tests.support.privacy import audit_rows
from tests.support.self_service import TEST_IP, code_mails
from vault.errors import RateLimited, Unavailable
from vault.rights import selfservice
from vault.sms import read_outbox
from vault.storage.rights_tables import self_service_challenges
from vault.subjects import store as subjects

PHONE_ONLY = {"phone": "0221 555 12 34", "name": "Ohne Mail"}
STORED = "+492215551234"
_CODE = re.compile(r"\b(\d{6})\b")


def _texts(vault) -> list:
    return read_outbox(vault.settings.sms_outbox_dir)


async def _start(vault, value: str, ip: str = TEST_IP) -> None:
    await selfservice.start_challenge(vault, kind="phone", value=value, client_ip=ip)
    await selfservice.wait_for_mail()


async def test_a_customer_known_only_by_phone_gets_an_sms_code_that_signs_in(vault):
    """The code goes by SMS to the stored number (none by mail), and it opens a session."""
    sid = await subjects.create_subject(vault, WRITER, PHONE_ONLY)
    await _start(vault, "+49 221 5551234")
    (sms,) = _texts(vault)
    assert sms.to == STORED and "Datenschutz-Center" in sms.text and "privacy centre" in sms.text
    assert code_mails(vault.settings.outbox_dir) == []
    code = _CODE.search(sms.text).group(1)
    session = await selfservice.verify_code(
        vault, kind="phone", value=STORED, code=code, client_ip=TEST_IP
    )
    assert session.subject_id == sid
    events = [r for r in await audit_rows(vault) if r["action"] == "subject:session:start"]
    assert events[-1]["decision"] == "allow" and events[-1]["fields"] == "phone"
    assert all(STORED not in str(r) and code not in str(r) for r in await audit_rows(vault))


async def test_a_customer_with_an_email_still_gets_the_code_by_mail(vault):
    """Signing in by phone when an e-mail address is stored: the mail, no SMS."""
    await subjects.create_subject(vault, WRITER, {**PHONE_ONLY, "email": "kunde@example.org"})
    await _start(vault, STORED)
    assert len(code_mails(vault.settings.outbox_dir)) == 1 and _texts(vault) == []


async def test_sms_codes_have_the_limits_of_mailed_codes(vault, clock):
    """Five codes an hour per number, the sixth refused with a Retry-After; an hour later
    it works again."""
    await subjects.create_subject(vault, WRITER, PHONE_ONLY)
    for i in range(5):
        await _start(vault, STORED, ip=f"198.51.100.{i}")
    with pytest.raises(RateLimited):
        await _start(vault, STORED, ip="198.51.100.99")
    assert len(_texts(vault)) == 5
    clock.advance(timedelta(hours=1, seconds=1))
    await _start(vault, STORED)
    assert len(_texts(vault)) == 6


async def test_a_gateway_that_cannot_send_refuses_known_and_unknown_numbers_alike(vault):
    """While the gateway is down every phone sign-in gets Unavailable and nothing is
    written, whether or not the number is known."""
    await subjects.create_subject(vault, WRITER, PHONE_ONLY)

    async def down() -> None:
        raise Unavailable("sms gateway down")

    vault.sms.check = down  # type: ignore[method-assign]
    for number in (STORED, "+4930999999"):
        with pytest.raises(Unavailable):
            await _start(vault, number)
    async with vault.engine.connect() as conn:
        count = select(func.count()).select_from(self_service_challenges)
        assert (await conn.execute(count)).scalar_one() == 0
    assert _texts(vault) == []
