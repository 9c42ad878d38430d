"""`/v1/mail` for the DPO (both databases): the pending and failed mails without address or
body, a retry that sends a failed confirmation mail, a discard, and problem+json errors
(404 unknown id, 409 not retriable, 422 bad input, 403 for other roles) that change nothing."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.factories import NEWSLETTER_EVIDENCE, api, bearer, client_key, person
from tests.support.mail_outbox import SwitchedMailer, fail_everything
from tests.support.privacy import assert_problem
from vault.storage.mail_tables import mail_outbox as outbox_table

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def _statuses(vault) -> list[str]:
    async with vault.engine.connect() as conn:
        return [r.status for r in await conn.execute(select(outbox_table.c.status))]


async def test_the_dpo_lists_retries_and_discards_mails(vault, clock):
    """A confirmation mail that failed while the server was down is listed (no address)
    as retriable and sent by `retry`; a second retry is 409, an unknown id 404, a blank
    reason 422, and a writer is refused with 403; `discard` ends a pending mail."""
    mailer = vault.mailer = SwitchedMailer()
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "datenschutz", "dpo")
    p = person(41)
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE},
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        await fail_everything(vault, clock)

        r = await http.get("/v1/mail?status=failed", headers=bearer(dpo))
        assert r.status_code == 200, r.text
        assert p["email"] not in r.text
        (mail,) = r.json()["mails"]
        assert mail["kind"] == "doi_confirmation" and mail["subject_id"] == sid
        assert mail["retriable"] is True and mail["status"] == "failed"
        assert (await http.get("/v1/mail?status=pending", headers=bearer(dpo))).json() == {
            "mails": []
        }

        assert_problem(await http.get("/v1/mail", headers=bearer(writer)), 403)
        assert_problem(await http.get("/v1/mail?status=sent", headers=bearer(dpo)), 422)
        url = f"/v1/mail/{mail['id']}/retry"
        blank = await http.post(url, json={"reason": "  "}, headers=bearer(dpo))
        assert_problem(blank, 422)
        assert_problem(
            await http.post(f"/v1/mail/{UNKNOWN}/retry", json={"reason": "x"}, headers=bearer(dpo)),
            404,
        )
        assert await _statuses(vault) == ["failed"] and mailer.accepted == []

        mailer.down = False
        r = await http.post(url, json={"reason": "mail server repaired"}, headers=bearer(dpo))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "sent" and r.json()["dpo_note"] == "mail server repaired"
        assert [str(m["To"]) for m in mailer.accepted] == [p["email"]]
        again = await http.post(url, json={"reason": "again"}, headers=bearer(dpo))
        assert assert_problem(again, 409)["type"] == "urn:tresor:problem:conflict"
        assert len(mailer.accepted) == 1

        mailer.down = True
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE},
            headers=bearer(writer),
        )
        (pending,) = (await http.get("/v1/mail?status=pending", headers=bearer(dpo))).json()[
            "mails"
        ]
        r = await http.post(
            f"/v1/mail/{pending['id']}/discard", json={"reason": "by letter"}, headers=bearer(dpo)
        )
        assert r.status_code == 200 and r.json()["status"] == "discarded", r.text
        assert sorted(await _statuses(vault)) == ["discarded", "sent"]
