"""The per-customer code limit and the lockout over HTTP (security finding 7): a locked or
limited customer is indistinguishable from an unknown address."""

from __future__ import annotations

import json
import re

from tests.support.factories import api
from tests.support.self_service import Page, code_mails, mails, seed_subject
from vault.rights import selfservice

UNKNOWN = {"email": "niemand.701@example.org"}


def _answer(r) -> tuple:
    """Status, body and headers, without what differs per request (id, date, instance)."""
    headers = {
        h: v for h, v in r.headers.items() if h not in ("x-request-id", "date", "content-length")
    }
    body = {k: v for k, v in r.json().items() if k != "instance"}
    return r.status_code, json.dumps(body, sort_keys=True), tuple(sorted(headers.items()))


async def _start_and_guess(http, body: dict, guesses: int) -> list[tuple]:
    answers = [_answer(await http.post("/self/v1/session", json=body))]
    for i in range(guesses):
        r = await http.post("/self/v1/session/verify", json={**body, "code": f"{900000 + i}"})
        answers.append(_answer(r))
    return answers


async def test_a_locked_customer_answers_like_an_unknown_address(vault):
    """Ten wrong codes by e-mail and phone lock the customer; from then on asking for a code
    and trying one get the very answers an unknown address gets, and no code is sent (the
    customer's mailbox gets a sign-in link instead, the unknown address nothing)."""
    _, p = await seed_subject(vault, 701)
    async with api(vault) as http:
        known = await _start_and_guess(http, {"email": p["email"]}, 5)
        known += await _start_and_guess(http, {"phone": p["phone"]}, 5)
        unknown = await _start_and_guess(http, UNKNOWN, 5)
        assert set(known) == set(unknown) and len(set(known)) == 2  # 202 and the one 401
        locked = await _start_and_guess(http, {"email": p["email"]}, 2)
        never = await _start_and_guess(http, UNKNOWN, 2)
        assert locked == never
    await selfservice.wait_for_mail()
    assert len(code_mails(vault.settings.outbox_dir)) == 2
    links = [m["To"] for m in mails(vault.settings.outbox_dir) if "/sign-in-link/" in str(m)]
    assert links == [p["email"].lower()]


async def test_the_customer_limit_answers_like_an_unknown_address(vault):
    """The sixth code an hour for one customer, asked by phone after five by e-mail and
    phone, gets the same 202 as an unknown address and sends nothing."""
    _, p = await seed_subject(vault, 702)
    async with api(vault) as http:
        for i in range(5):
            kind = "email" if i % 2 else "phone"
            r = await http.post("/self/v1/session", json={kind: p[kind]})
            assert r.status_code == 202
        limited = _answer(await http.post("/self/v1/session", json={"phone": p["phone"]}))
        unknown = _answer(await http.post("/self/v1/session", json=UNKNOWN))
    assert limited == unknown
    await selfservice.wait_for_mail()
    assert len(code_mails(vault.settings.outbox_dir)) == 5


async def test_during_a_lock_the_customer_signs_in_through_the_link_page(vault):
    """While a guesser's wrong codes lock the customer, the customer's code request on the
    page mails a link; opening it (as a mail scanner would) only shows a button, a post
    without the CSRF token is refused, the button opens the session, and the used link is
    invalid afterwards (German and English)."""
    _, p = await seed_subject(vault, 703)
    async with api(vault) as attacker:
        await _start_and_guess(attacker, {"email": p["email"]}, 5)
        await _start_and_guess(attacker, {"phone": p["phone"]}, 5)
    async with api(vault) as http:
        page = Page((await http.get("/privacy?lang=en")).text)
        r = await http.post(
            page.form("/privacy/sign-in")["action"],
            data={"_csrf_token": page.csrf(), "kind": "email", "value": p["email"]},
        )
        assert r.status_code == 200 and "sign-in link instead of a code" in r.text
        await selfservice.wait_for_mail()
        (mail,) = [m for m in mails(vault.settings.outbox_dir) if "/sign-in-link/" in str(m)]
        link = re.search(
            r"(/privacy/sign-in-link/[A-Za-z0-9_-]+)", mail.get_body(("plain",)).get_content()
        ).group(1)
        for lang, words in (("de", "Jetzt anmelden"), ("en", "Sign in now")):
            shown = await http.get(f"{link}?lang={lang}")
            assert shown.status_code == 200 and words in shown.text
            assert "tresor_self" not in shown.headers.get("set-cookie", "")
        form = Page(shown.text).form(link)
        assert (await http.post(form["action"], data={})).status_code == 403
        r = await http.post(form["action"], data=form["fields"])
        assert r.status_code == 303 and "tresor_self=" in r.headers["set-cookie"]
        overview = await http.get("/privacy?lang=en")
        assert p["phone"] in overview.text and p["name"] in overview.text
        again = await http.post(form["action"], data=form["fields"])
        assert again.status_code == 410 and "Link not valid" in again.text
        assert (await http.get(link)).status_code == 404
