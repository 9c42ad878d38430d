"""Sign-in by SMS code over HTTP (both databases): with the gateway down the answer is 503
problem+json for known and unknown numbers alike and nothing is stored (a code that cannot
leave now must not leave late); with it up the code goes to the gateway directly, never
through the mail outbox, whose retries could deliver it after it expired."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.support.factories import WRITER, api
from tests.support.privacy import assert_problem
from vault.errors import Unavailable
from vault.rights.selfservice import wait_for_mail
from vault.sms import TextMessage
from vault.storage.audit_tables import audit_events
from vault.storage.mail_tables import mail_outbox
from vault.storage.rights_tables import self_service_challenges
from vault.subjects.store import create_subject

PHONE_ONLY = {"phone": "0221 555 12 34", "name": "Ohne Mail"}
UNKNOWN = "+49 30 9999999"


class Gateway:
    """An SMS gateway the test switches off and on; keeps what it was handed."""

    def __init__(self) -> None:
        self.down = True
        self.sent: list[TextMessage] = []

    async def send(self, message: TextMessage) -> None:
        if self.down:
            raise Unavailable("sms gateway down")
        self.sent.append(message)

    async def check(self) -> None:
        if self.down:
            raise Unavailable("sms gateway down")


async def _count(vault, table) -> int:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_gateway_down_answers_503_and_stores_nothing(vault):
    """A phone sign-in while the gateway is down is a 503 `urn:tresor:problem:unavailable`
    with Retry-After, the same for a known and an unknown number, naming neither; no
    challenge, no audit event and no outbox row is written."""
    gateway = vault.sms = Gateway()
    await create_subject(vault, WRITER, PHONE_ONLY)
    events = await _count(vault, audit_events)
    async with api(vault) as http:
        answers = []
        for number in (PHONE_ONLY["phone"], UNKNOWN):
            r = await http.post("/self/v1/session", json={"phone": number})
            body = assert_problem(r, 503)
            assert body["type"] == "urn:tresor:problem:unavailable"
            assert r.headers.get("retry-after")
            text = r.text + str(dict(r.headers))
            # The numbers' own digit runs (a bare "555" also turns up in random request ids).
            assert "5551234" not in text and "555 12 34" not in text and "9999999" not in text
            answers.append((body["title"], body["detail"]))
        assert answers[0] == answers[1]
    assert await _count(vault, self_service_challenges) == 0
    assert await _count(vault, audit_events) == events
    assert await _count(vault, mail_outbox) == 0
    assert gateway.sent == []


async def test_gateway_up_sends_the_code_directly_not_through_the_mail_outbox(vault):
    """With the gateway up the sign-in answers 202 and the code goes to the gateway once;
    the mail outbox stays empty (an SMS code is never queued for later)."""
    gateway = vault.sms = Gateway()
    gateway.down = False
    await create_subject(vault, WRITER, PHONE_ONLY)
    async with api(vault) as http:
        r = await http.post("/self/v1/session", json={"phone": PHONE_ONLY["phone"]})
        assert r.status_code == 202, r.text
        await wait_for_mail()
    assert len(gateway.sent) == 1 and gateway.sent[0].to == "+492215551234"
    assert await _count(vault, self_service_challenges) == 1
    assert await _count(vault, mail_outbox) == 0
