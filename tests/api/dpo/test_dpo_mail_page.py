"""The console's mail page (both databases): linked from the queue's counts, it lists the
failed and pending mails without address, retries a failed one and discards another through
CSRF-protected forms with a reason, and says why when nothing was done."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.support.console import csrf_of, post_form, sign_in
from tests.support.factories import NEWSLETTER_EVIDENCE, api, bearer, client_key, person
from tests.support.mail_outbox import SwitchedMailer, fail_everything
from vault.storage.audit_tables import audit_events
from vault.storage.mail_tables import mail_outbox as outbox_table


async def test_the_dpo_retries_and_discards_mails_on_the_page(vault, clock):
    """The failed count links to the page; the page shows the mail's kind and subject link,
    never the address; a retry without CSRF token is refused, one with a reason sends the
    mail, a blank reason is a 422 page, and a discard ends a pending mail; each audited."""
    mailer = vault.mailer = SwitchedMailer()
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "datenschutz", "dpo")
    p = person(51)
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        consent = {"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE}
        r = await http.post(f"/v1/subjects/{sid}/consents", json=consent, headers=bearer(writer))
        assert r.status_code == 201, r.text
        await fail_everything(vault, clock)
        await sign_in(http, dpo)

        queue = (await http.get("/dpo/requests?lang=en")).text
        assert 'href="/dpo/mail?lang=en&amp;status=failed"' in queue
        url = "/dpo/mail?lang=en&status=failed"
        page = await http.get(url)
        assert page.status_code == 200
        assert "Double opt-in confirmation" in page.text and f"/dpo/subjects/{sid}" in page.text
        assert p["email"] not in page.text
        (mail_id,) = re.findall(r'data-mail="([0-9a-f-]{36})"', page.text)
        action = f"/dpo/mail/{mail_id}/retry?lang=en"

        refused = await http.post(action, data={"reason": "no token"})
        assert refused.status_code == 403
        blank = await post_form(http, url, action, {"reason": " "})
        assert blank.status_code == 422 and "Please check the form" in blank.text
        assert mailer.accepted == []

        mailer.down = False
        r = await post_form(http, url, action, {"reason": "mail server repaired"})
        assert r.status_code == 303 and r.headers["location"].endswith("done=retry")
        done = await http.get(r.headers["location"])
        assert "queued again" in done.text and 'id="mail-empty"' in done.text
        assert [str(m["To"]) for m in mailer.accepted] == [p["email"]]
        again = await http.post(action, data={"reason": "again", "_csrf_token": csrf_of(done)})
        assert again.status_code == 409 and "Not done" in again.text

        mailer.down = True
        r = await http.post(f"/v1/subjects/{sid}/consents", json=consent, headers=bearer(writer))
        page = await http.get("/dpo/mail?lang=de")
        assert "Double-Opt-in-Bestätigung" in page.text and "Wartend" in page.text
        (pending_id,) = re.findall(r'data-mail="([0-9a-f-]{36})"', page.text)
        r = await post_form(
            http,
            "/dpo/mail?lang=de",
            f"/dpo/mail/{pending_id}/discard?lang=de",
            {"reason": "Brief"},
        )
        assert r.status_code == 303 and "verworfen" in (await http.get(r.headers["location"])).text

    async with vault.engine.connect() as conn:
        statuses = {r.id: r.status for r in await conn.execute(select(outbox_table))}
        actions = [
            r.action
            for r in await conn.execute(
                select(audit_events.c.action).where(audit_events.c.action.like("dpo:mail:%"))
            )
        ]
    assert statuses == {mail_id: "sent", pending_id: "discarded"}
    assert actions.count("dpo:mail:retry") == 1 and actions.count("dpo:mail:discard") == 1
