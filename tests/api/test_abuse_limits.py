"""Abuse limits: body size, batch size, self-service code requests and failed authentication
each end in a clear problem+json (413 / 422 / 429 with Retry-After) and change nothing."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy import func, select

from api.app import MAX_BODY_BYTES
from api.subjects.bulk import BULK_MAX_BODY_BYTES
from tests.support.factories import api, bearer, client_key, person
from tests.support.privacy import assert_problem
from tests.support.self_service import code_mails, seed_subject
from vault.context import VaultContext
from vault.rights import selfservice
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.rights_tables import self_service_challenges
from vault.storage.tables import subjects

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def _rows(vault: VaultContext) -> dict[str, int]:
    """Row counts of every table an over-limit request could have touched."""
    out: dict[str, int] = {}
    async with vault.engine.connect() as conn:
        for table in (subjects, audit_events, contacts, contact_budgets, self_service_challenges):
            out[table.name] = (
                await conn.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return out


def _padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON with a `pad` member making it exactly `size` bytes."""
    raw = httpx.Request("POST", "/", json={**body, "pad": ""}).content
    return raw.replace(b'"pad":""', b'"pad":"' + b"x" * (size - len(raw)) + b'"')


async def test_over_large_bodies_get_413_everywhere_and_change_nothing(vault):
    """Bodies over 64 KiB get 413 on the single lookup and the public sign-in, bodies over
    4 MiB on the batch lookup; no audit event, challenge or contact appears."""
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    json_type = {"content-type": "application/json"}
    async with api(vault) as http:
        before = await _rows(vault)
        single = _padded(
            {"purpose": "order.delivery", "subject_id": UNKNOWN_ID}, MAX_BODY_BYTES + 1
        )
        r = await http.post("/v1/lookup", content=single, headers={**bearer(shop), **json_type})
        assert_problem(r, 413)
        sign_in = _padded({"email": "erika@example.org"}, MAX_BODY_BYTES + 1)
        r = await http.post("/self/v1/session", content=sign_in, headers=json_type)
        assert_problem(r, 413)
        batch = {
            "purpose": "order.delivery",
            "subject_ids": [UNKNOWN_ID],
            "contact": {"brand": "tresor"},
        }
        r = await http.post(
            "/v1/lookup/batch",
            content=_padded(batch, BULK_MAX_BODY_BYTES + 1),
            headers={**bearer(shop), **json_type},
        )
        assert_problem(r, 413)
        assert await _rows(vault) == before
        # Just under the bulk limit the body is read and judged on its content (`pad` is
        # not a member), which shows the 413 above came from the size alone.
        r = await http.post(
            "/v1/lookup/batch",
            content=_padded(batch, BULK_MAX_BODY_BYTES - 1),
            headers={**bearer(shop), **json_type},
        )
        assert_problem(r, 422)
        assert await _rows(vault) == before


async def test_batches_over_ten_thousand_get_422_naming_the_list_and_change_nothing(vault):
    """10,001 identifiers in a batch lookup (with a contact reservation) or a dry run are a
    422 problem naming the identifier list; nothing is audited, reserved or counted."""
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    too_many = [UNKNOWN_ID] * 10_001
    async with api(vault) as http:
        before = await _rows(vault)
        for path, body in (
            (
                "/v1/lookup/batch",
                {
                    "purpose": "order.delivery",
                    "subject_ids": too_many,
                    "contact": {"brand": "tresor"},
                },
            ),
            ("/v1/lookup/dry-run", {"purpose": "order.delivery", "subject_ids": too_many}),
        ):
            r = await http.post(path, json=body, headers=bearer(shop))
            problem = assert_problem(r, 422)
            assert any(e["field"] == "/subject_ids" for e in problem.get("errors", [])), problem
        assert await _rows(vault) == before
        r = await http.post(
            "/v1/lookup/dry-run",
            json={"purpose": "order.delivery", "subject_ids": too_many[:10_000]},
            headers=bearer(shop),
        )
        # The limit itself passes validation: ten thousand unknown ids reach the dry run,
        # which then refuses them as an audience of no one (no subject found).
        assert assert_problem(r, 403)["reason"] == "audience_too_small"


async def test_code_rate_limit_answers_known_and_unknown_alike_and_writes_no_challenge(vault):
    """The sixth code request within an hour gets the same 429 with Retry-After for a known
    and an unknown address; it stores no challenge and mails nothing."""
    _, p = await seed_subject(vault, 301)
    async with api(vault) as http:
        for address in (p["email"], "unbekannt.301@example.org"):
            for _ in range(5):
                r = await http.post("/self/v1/session", json={"email": address})
                assert r.status_code == 202, r.text
        before = await _rows(vault)
        answers = []
        for address in (p["email"], "unbekannt.301@example.org"):
            r = await http.post("/self/v1/session", json={"email": address})
            body = assert_problem(r, 429)
            assert body["type"] == "urn:tresor:problem:rate-limited"
            assert 1 <= int(r.headers["retry-after"]) <= 3601
            answers.append((r.headers["retry-after"], body["type"], body["title"], body["detail"]))
            assert p["email"] not in r.text and "unbekannt" not in r.text
        assert answers[0] == answers[1]
        await selfservice.wait_for_mail()
    after = await _rows(vault)
    assert after[self_service_challenges.name] == before[self_service_challenges.name]
    assert after[subjects.name] == before[subjects.name]
    assert len(code_mails(vault.settings.outbox_dir)) == 5  # only the known address's five


async def test_failed_auth_limit_is_a_429_that_changes_nothing(vault):
    """Once an address used up its failed authentications, a further wrong key gets a 429
    problem with Retry-After that changes nothing, while a valid key is still served."""
    writer = await client_key(vault, "crm", "writer")
    vault.settings = replace(vault.settings, failed_auth_limit=2)  # the two with a header
    async with api(vault) as http:
        for header in (bearer("tresor_wrong"), {"Authorization": "Basic eA=="}, {}, {}):
            r = await http.get("/v1/clients", headers=header)
            assert_problem(r, 401)
        before = await _rows(vault)
        r = await http.post("/v1/subjects", json=person(302), headers=bearer("tresor_wrong"))
        body = assert_problem(r, 429)
        assert body["type"] == "urn:tresor:problem:rate-limited"
        assert 1 <= int(r.headers["retry-after"]) <= 61
        assert await _rows(vault) == before
        r = await http.post("/v1/subjects", json=person(302), headers=bearer(writer))
        assert r.status_code == 201


async def test_dpo_console_sign_in_shares_the_failed_auth_limit(vault):
    """Wrong keys typed into the DPO console count against the same limit as the API: the
    next wrong key gets a 429 page with Retry-After and no session, the API brakes wrong
    keys too, and the right key still signs in."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    vault.settings = replace(vault.settings, failed_auth_limit=3)
    async with api(vault) as http:
        page = await http.get("/dpo/signin?lang=en")
        match = _CSRF.search(page.text)
        assert match, "no CSRF field on the sign-in page"
        token = html.unescape(match.group(1))
        for _ in range(3):
            r = await http.post(
                "/dpo/signin?lang=en", data={"api_key": "tresor_wrong", "_csrf_token": token}
            )
            assert r.status_code == 401
        r = await http.post(
            "/dpo/signin?lang=en", data={"api_key": "tresor_wrong", "_csrf_token": token}
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "Too many failed sign-ins" in r.text
        assert not [v for v in r.headers.get_list("set-cookie") if v.startswith("tresor_dpo=")]
        assert_problem(await http.get("/v1/audit", headers=bearer("tresor_wrong")), 429)
        assert (await http.get("/v1/audit", headers=bearer(dpo))).status_code == 200
        r = await http.post("/dpo/signin?lang=en", data={"api_key": dpo, "_csrf_token": token})
        assert r.status_code == 303
        assert [v for v in r.headers.get_list("set-cookie") if v.startswith("tresor_dpo=")]
