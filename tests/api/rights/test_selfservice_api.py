"""The privacy centre's JSON API (/self/v1) end to end through HTTP, on both databases."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import (
    CANARY,
    assert_problem,
    audit_rows,
    consent_statuses,
    found_canaries,
)
from tests.support.self_service import api_sign_in, code_mails, latest_code, seed_subject
from vault.rights import selfservice

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def test_starting_a_session_never_reveals_whether_the_address_exists(vault):
    """Known and unknown addresses get the same 202, the same body and headers and the same
    timing class; only the known one receives a mail."""
    known = [(await seed_subject(vault, 200 + i))[1]["email"] for i in range(6)]
    unknown = [f"niemand{i}@example.org" for i in range(6)]
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    answers = set()
    async with api(vault) as http:
        await http.post("/self/v1/session", json={"email": "warmup@example.org"})
        for k, u in zip(known, unknown, strict=True):
            for label, address in (("known", k), ("unknown", u)):
                started = time.perf_counter()
                r = await http.post("/self/v1/session", json={"email": address})
                timings[label].append(time.perf_counter() - started)
                headers = {h: v for h, v in r.headers.items() if h not in ("x-request-id", "date")}
                answers.add((r.status_code, r.text, tuple(sorted(headers.items()))))
    assert len(answers) == 1, answers
    status, body, _ = answers.pop()
    assert status == 202 and '"accepted"' in body
    await selfservice.wait_for_mail()
    assert sorted(m["To"] for m in code_mails(vault.settings.outbox_dir)) == sorted(
        a.lower() for a in known
    )
    fast, slow = sorted(statistics.median(v) for v in timings.values())
    assert slow < fast * 3 or slow - fast < 0.02, timings


async def test_a_signed_in_subject_sees_data_consents_and_access_log(vault):
    """After the mailed code, GET /me shows contact data, consents with titles, touchpoint
    and expiry, and the lookups made by internal systems; the read is audited."""
    sid, p = await seed_subject(vault, 210)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "subject_id": sid},
            headers=bearer(shop),
        )
        assert r.status_code == 200, r.text
        auth = await api_sign_in(http, vault, p["email"])
        r = await http.get("/self/v1/me", headers=auth)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["subject_id"] == sid and me["status"] == "active"
    assert me["contact"]["email"] == p["email"].lower()
    assert me["contact"]["name"] == p["name"]
    assert me["contact"]["postal_address"]["street"] == p["postal_address"]["street"]
    sms = next(c for c in me["consents"] if c["purpose"] == "offers.sms")
    assert sms["title"] == {"de": "Angebote per SMS", "en": "Offers by text message"}
    assert sms["touchpoint"] == "shop.counter" and sms["method"] == "paper_form"
    assert sms["given_at"].startswith("2026-11-23T10:00")
    assert sms["expires_at"].startswith("2027-11-23T10:00")
    assert sms["withdrawable"] is True
    (access,) = me["access_log"]
    assert access["client"] == "shop" and access["purpose"] == "order.delivery"
    assert access["title"]["de"] == "Lieferung Ihrer Bestellungen"
    assert access["fields"] == ["name", "phone", "postal_address"]
    assert access["decision"] == "allow"
    assert me["requests"] == []
    reads = [e for e in await audit_rows(vault) if e["action"] == "subject:contact:read"]
    assert [(e["subject_id"], e["actor_type"]) for e in reads] == [(sid, "subject")]


async def test_a_wrong_code_is_the_same_401_as_an_unknown_address(vault):
    """Wrong code, unknown address and malformed code all answer one identical 401 problem."""
    _, p = await seed_subject(vault, 211)
    async with api(vault) as http:
        await http.post("/self/v1/session", json={"email": p["email"]})
        code = await latest_code(vault)
        wrong = f"{(int(code) + 7) % 1_000_000:06d}"
        answers = []
        for body in (
            {"email": p["email"], "code": wrong},
            {"email": "niemand@example.org", "code": wrong},
            {"email": p["email"], "code": "abc"},
        ):
            r = await http.post("/self/v1/session/verify", json=body)
            problem = assert_problem(r, 401)
            assert r.headers["www-authenticate"].startswith("Bearer")
            answers.append((problem["type"], problem["detail"], problem["reason"]))
        assert len(set(answers)) == 1
        r = await http.post("/self/v1/session/verify", json={"code": code})
        assert_problem(r, 422)
        r = await http.post(
            "/self/v1/session/verify", json={"email": p["email"], "phone": p["phone"], "code": code}
        )
        assert_problem(r, 422)
        r = await http.post("/self/v1/session/verify", json={"email": p["email"], "code": code})
        assert r.status_code == 200 and r.json()["token_type"] == "Bearer"


async def test_self_routes_need_a_session_and_api_keys_do_not_open_them(vault):
    """Without a session token /self/v1 answers 401; an API key is no session, and a session
    token is no API key."""
    sid, p = await seed_subject(vault, 212)
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        auth = await api_sign_in(http, vault, p["email"])
        for headers in ({}, bearer(writer), bearer("nonsense"), {"Authorization": "Basic x"}):
            for method, path in (
                ("GET", "/self/v1/me"),
                ("GET", "/self/v1/export"),
                ("GET", f"/self/v1/requests/{UNKNOWN_ID}"),
                ("POST", f"/self/v1/consents/{UNKNOWN_ID}/withdraw"),
                ("DELETE", "/self/v1/session"),
            ):
                r = await http.request(method, path, headers=headers)
                assert_problem(r, 401)
                assert r.headers["www-authenticate"].startswith("Bearer")
        r = await http.post(
            "/v1/lookup", json={"purpose": "order.delivery", "subject_id": sid}, headers=auth
        )
        assert_problem(r, 401)
        r = await http.get(f"/v1/subjects/{sid}/consents", headers=auth)
        assert_problem(r, 401)


async def test_rate_limits_answer_429_with_retry_after(vault, clock):
    """The sixth code for one address and the twenty-first from one client within an hour
    get a 429 problem with Retry-After; nothing is mailed for them."""
    _, p = await seed_subject(vault, 213)
    async with api(vault) as http:
        for _ in range(5):
            r = await http.post("/self/v1/session", json={"email": p["email"]})
            assert r.status_code == 202
        r = await http.post("/self/v1/session", json={"email": p["email"]})
        assert_problem(r, 429)
        assert 3500 < int(r.headers["retry-after"]) <= 3601
        for i in range(15):
            r = await http.post("/self/v1/session", json={"email": f"x{i}@example.org"})
            assert r.status_code == 202, (i, r.text)
        r = await http.post("/self/v1/session", json={"phone": "+49301234567"})
        assert_problem(r, 429)
        await selfservice.wait_for_mail()
        assert len(code_mails(vault.settings.outbox_dir)) == 5
        clock.advance(timedelta(hours=1, seconds=1))
        r = await http.post("/self/v1/session", json={"email": p["email"]})
        assert r.status_code == 202


async def test_sessions_expire_and_sign_out_ends_them(vault, clock):
    """A session token stops working after fifteen minutes, and at once after DELETE."""
    _, p = await seed_subject(vault, 214)
    async with api(vault) as http:
        auth = await api_sign_in(http, vault, p["email"])
        clock.advance(timedelta(minutes=15))
        assert_problem(await http.get("/self/v1/me", headers=auth), 401)
        clock.advance(timedelta(hours=2))  # past the per-address window's first codes
        auth = await api_sign_in(http, vault, p["email"])
        assert (await http.get("/self/v1/me", headers=auth)).status_code == 200
        r = await http.delete("/self/v1/session", headers=auth)
        assert r.status_code == 204
        assert_problem(await http.get("/self/v1/me", headers=auth), 401)


async def test_withdrawal_is_effective_at_once_and_only_for_own_consents(vault):
    """Withdrawing my consent makes the next lookup deny consent_withdrawn; someone else's
    consent id is a 404 that changes nothing; a contract basis is a 409."""
    sid, p = await seed_subject(vault, 215)
    other_sid, other = await seed_subject(vault, 216)
    sms_client = await client_key(vault, "sms-gateway", "lookup", ["offers.sms"])
    async with api(vault) as http:
        other_auth = await api_sign_in(http, vault, other["email"])
        theirs = (await http.get("/self/v1/me", headers=other_auth)).json()["consents"]
        auth = await api_sign_in(http, vault, p["email"])
        mine = (await http.get("/self/v1/me", headers=auth)).json()["consents"]
        their_sms = next(c["consent_id"] for c in theirs if c["purpose"] == "offers.sms")
        my_sms = next(c["consent_id"] for c in mine if c["purpose"] == "offers.sms")
        contract = next(c["consent_id"] for c in mine if c["purpose"] == "order.delivery")
        before = await consent_statuses(vault)

        r = await http.post(f"/self/v1/consents/{their_sms}/withdraw", headers=auth)
        assert_problem(r, 404)
        r = await http.post(f"/self/v1/consents/{UNKNOWN_ID}/withdraw", headers=auth)
        assert_problem(r, 404)
        r = await http.post(f"/self/v1/consents/{contract}/withdraw", headers=auth)
        assert_problem(r, 409)
        r = await http.post("/self/v1/consents/not-a-uuid/withdraw", headers=auth)
        assert_problem(r, 422)
        assert await consent_statuses(vault) == before

        q = {"purpose": "offers.sms", "subject_id": sid, "contact": {"brand": "tresor"}}
        r = await http.post("/v1/lookup", json=q, headers=bearer(sms_client))
        assert r.status_code == 200
        r = await http.post(f"/self/v1/consents/{my_sms}/withdraw", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "withdrawn" and r.json()["withdrawable"] is False
        r = await http.post("/v1/lookup", json=q, headers=bearer(sms_client))
        assert r.status_code == 403 and r.json()["reason"] == "consent_withdrawn"
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "offers.sms", "subject_id": other_sid, "contact": {"brand": "tresor"}},
            headers=bearer(sms_client),
        )
        assert r.status_code == 200


async def test_requests_are_created_verified_and_visible_only_to_their_subject(vault):
    """A self-service request is verified at once (an objection completes immediately, a
    rectification waits in review); only its own subject can read it back."""
    _, p = await seed_subject(vault, 217)
    _, other = await seed_subject(vault, 218)
    async with api(vault) as http:
        auth = await api_sign_in(http, vault, p["email"])
        r = await http.post("/self/v1/requests", json={"type": "objection"}, headers=auth)
        assert r.status_code == 201, r.text
        objection = r.json()
        assert objection["status"] == "completed" and objection["channel"] == "self_service"
        assert objection["due_at"].startswith("2026-12-23")
        r = await http.post(
            "/self/v1/requests",
            json={"type": "rectification", "payload": {"changes": {"name": "Neuer Name"}}},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "in_review"
        r = await http.post("/self/v1/requests", json={"type": "deletion"}, headers=auth)
        assert_problem(r, 422)
        r = await http.post(
            "/self/v1/requests", json={"type": "rectification", "payload": {}}, headers=auth
        )
        assert_problem(r, 422)

        r = await http.get(f"/self/v1/requests/{objection['request_id']}", headers=auth)
        assert r.status_code == 200 and r.json()["type"] == "objection"
        me = (await http.get("/self/v1/me", headers=auth)).json()
        assert {x["type"] for x in me["requests"]} == {"objection", "rectification"}

        other_auth = await api_sign_in(http, vault, other["email"])
        r = await http.get(f"/self/v1/requests/{objection['request_id']}", headers=other_auth)
        assert_problem(r, 404)
        r = await http.get(f"/self/v1/requests/{UNKNOWN_ID}", headers=auth)
        assert_problem(r, 404)


async def test_the_export_is_my_data_as_json(vault):
    """GET /self/v1/export returns the subject's own document with its contact data."""
    sid, p = await seed_subject(vault, 219)
    async with api(vault) as http:
        auth = await api_sign_in(http, vault, p["email"])
        r = await http.get("/self/v1/export", headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert p["email"].lower() in r.text and sid in r.text


async def test_no_address_reaches_logs_or_the_audit_trail(vault, log_stream):
    """The whole self-service flow on canary data leaves no canary in the JSON logs or in
    any audit column (the code mail itself goes to the stored address by design)."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        r = await http.post("/v1/subjects", json=CANARY, headers=bearer(writer))
        sid = r.json()["subject_id"]
        await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "order.delivery", "reference": "order 9"},
            headers=bearer(writer),
        )
        await http.post("/self/v1/session", json={"email": CANARY["email"].upper()})
        await http.post("/self/v1/session", json={"phone": CANARY["phone"]})
        await http.post(
            "/self/v1/session/verify", json={"email": CANARY["email"], "code": "000001"}
        )
        auth = await api_sign_in(http, vault, CANARY["email"])
        me = await http.get("/self/v1/me", headers=auth)
        assert CANARY["email"] in me.text  # the subject's own data, in the body only
        await http.get("/self/v1/export", headers=auth)
        await http.post("/self/v1/requests", json={"type": "restriction"}, headers=auth)
        await http.delete("/self/v1/session", headers=auth)
    logs = log_stream.getvalue()
    assert "/self/v1/me" in logs
    assert not found_canaries(logs), found_canaries(logs)
    for event in await audit_rows(vault):
        text = " | ".join(str(v) for v in event.values())
        assert not found_canaries(text), (found_canaries(text), event)


async def test_the_access_log_shows_every_client_access_with_a_label(vault):
    """Besides lookups, the customer's access log (JSON and page, German and English) shows
    being counted in a client's audience check, a contact a client recorded, a client
    reading the consents or preferences, and a client's attempt its role does not allow,
    each labelled with the client and no value; a DPO's reads and the customer's own are
    not listed."""
    import re

    from tests.support.self_service import Page, page_sign_in

    sid, p = await seed_subject(vault, 230)
    news = await client_key(vault, "news", "lookup", ["order.delivery"])
    campaigns = await client_key(vault, "campaigns", "writer", ["offers.sms"])
    dpo = await client_key(vault, "dpo-office", "dpo")
    contact = {
        "subject_id": sid,
        "brand": "tresor",
        "channel": "sms",
        "type": "commercial",
        "purpose": "offers.sms",
    }
    async with api(vault) as http:
        for method, path, body, key, status in (
            (
                "POST",
                "/v1/lookup/dry-run",
                {"purpose": "order.delivery", "emails": [p["email"]]},
                news,
                403,
            ),
            ("POST", "/v1/contacts", contact, campaigns, 201),
            ("GET", f"/v1/subjects/{sid}/consents", None, campaigns, 200),
            ("GET", f"/v1/subjects/{sid}/preferences", None, campaigns, 200),
            ("GET", f"/v1/subjects/{sid}/consents", None, dpo, 200),
            ("GET", f"/v1/subjects/{sid}/consents", None, news, 403),
        ):
            r = await http.request(method, path, json=body, headers=bearer(key))
            assert r.status_code == status, (path, r.text)
        auth = await api_sign_in(http, vault, p["email"])
        await http.get("/self/v1/me", headers=auth)  # the customer's own read: not listed
        me = (await http.get("/self/v1/me", headers=auth)).json()
        await page_sign_in(http, vault, p["email"], lang="en")
        pages = {lang: (await http.get(f"/privacy?lang={lang}")).text for lang in ("de", "en")}
    log = [(a["kind"], a["client"], a["decision"], a["fields"]) for a in me["access_log"]]
    assert log == [
        ("refused", "news", "deny", []),
        ("preferences_read", "campaigns", "allow", []),
        ("consents_read", "campaigns", "allow", []),
        ("contact_record", "campaigns", "allow", []),
        ("audience_check", "news", "deny", []),
    ]
    check = me["access_log"][-1]
    assert check["label"] == {
        "de": "in einer Zielgruppenprüfung von news mitgezählt",
        "en": "counted in an audience check by news",
    }
    assert check["purpose"] == "order.delivery"
    for lang, text in (
        ("de", "in einer Zielgruppenprüfung von news mitgezählt"),
        ("en", "counted in an audience check by news"),
    ):
        section = re.search(
            r'<section aria-labelledby="access-heading".*?</section>', pages[lang], re.S
        )
        assert section and text in section.group(0)
        assert "dpo-office" not in section.group(0) and p["email"] not in section.group(0)
        assert Page(pages[lang]).lang == lang
