"""The DPO sees the mail outbox on the request queue, on both databases: how many mails
wait for the mail server and how many were given up (a customer was not told), as counts
only, never an address."""

from __future__ import annotations

from datetime import timedelta

from tests.support.console import sign_in
from tests.support.factories import api, bearer, client_key, person
from vault import mail_outbox
from vault.errors import Unavailable

NEWS = {
    "touchpoint": "web.newsletter_form",
    "method": "web_form",
    "notice_version": "2026-10",
    "language": "de",
}


class _Down:
    """A mail server that takes nothing."""

    async def send(self, message: object) -> None:
        raise Unavailable("mail server is not reachable")

    async def check(self) -> None:
        raise Unavailable("mail server is not reachable")


async def test_the_queue_page_counts_waiting_and_given_up_mails(vault, clock):
    """With the mail server down, a double opt-in still answers 201 and its mail waits
    (counted as waiting); once its retry window has passed it is counted as not delivered.
    The page never shows the address."""
    vault.mailer = _Down()
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "datenschutz", "dpo")
    p = person(31)
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "newsletter.email", "evidence": NEWS},
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        await sign_in(http, dpo)
        page = (await http.get("/dpo/requests?lang=en")).text
        assert 'id="mail-pending"' in page and "Mails waiting in the outbox" in page
        assert 'id="mail-failed"' not in page
        sender = mail_outbox.MailSender(vault)
        for _ in range(100):
            clock.advance(timedelta(minutes=31))
            await sender.run()
        assert (await mail_outbox.counts(vault))["failed"] == 1
        await sign_in(http, dpo)  # the earlier session idled out meanwhile
        page = (await http.get("/dpo/requests?lang=en")).text
        assert 'id="mail-failed"' in page and "Mails not delivered" in page
        assert p["email"] not in page
