"""The per-customer code limit and the lockout over HTTP (security finding 7): a locked or
limited customer is indistinguishable from an unknown address."""

from __future__ import annotations

import json

from tests.support.factories import api
from tests.support.self_service import code_mails, seed_subject
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
    and trying one get the very answers an unknown address gets, and no mail is sent."""
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
