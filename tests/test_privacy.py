"""Plaintext contact data never leaves the ciphertexts: not into logs, the audit trail, the
database at rest or error answers; and every lookup is one audit event.

One subject is stored with distinctive "canary" values, every flow of the API is run on it
(with good and bad input), and then every place the data must not reach is searched for each
canary in the spellings it may take (as typed, normalised, lower and upper case).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from tests.support.factories import NEWSLETTER_EVIDENCE, api, bearer, client_key, outbox_links
from tests.support.privacy import (
    CANARY,
    CANARY_AGENT,
    CANARY_IP,
    assert_problem,
    audit_rows,
    found_canaries,
    raw_database_bytes,
)
from vault.storage.tables import consents

LOOKUP = "client:contact:lookup"


MARKETING = frozenset({"newsletter.email", "offers.email", "offers.sms", "offers.phone"})


@dataclass
class Recorder:
    """Every response of the run, and the lookups with the decision each should have."""

    responses: list[httpx.Response] = field(default_factory=list)
    lookups: list[tuple[str, str, str | None]] = field(default_factory=list)

    def keep(self, r: httpx.Response) -> httpx.Response:
        self.responses.append(r)
        return r


async def _run_every_flow(vault, http: httpx.AsyncClient, rec: Recorder) -> None:
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "dpo-office", "dpo")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    mailer = await client_key(vault, "mailer", "lookup", ["newsletter.email"])
    # Granted incident.notice, the call centre's calls pass the basket as `critical`: this
    # run is about what leaks, and a second 25-point call would not fit the basket.
    callcenter = await client_key(
        vault, "callcenter", "lookup", ["offers.phone", "offers.sms", "incident.notice"]
    )

    async def call(method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**(bearer(key) if key else {}), **kw.pop("headers", {})}
        return rec.keep(await http.request(method, path, headers=headers, **kw))

    async def lookup(key: str, body: dict[str, Any], status: int, reason: str | None = None):
        if body["purpose"] in MARKETING:  # a marketing lookup must announce its contact
            priority = "critical" if key == callcenter else "normal"
            body = {**body, "contact": {"brand": "tresor", "priority": priority}}
        n = len(rec.lookups)
        r = await call("POST", "/v1/lookup", key, json=body, headers={"X-Request-ID": f"lk-{n}"})
        assert r.status_code == status, (body, r.text)
        decision = "allow" if status == 200 else "deny"
        rec.lookups.append((f"lk-{n}", decision, reason))
        if status != 200:
            assert assert_problem(r).get("reason") == reason
        return r

    # -- store, rectify ------------------------------------------------------------------
    # With an Idempotency-Key, retried once: the stored answer is sealed (issue 17).
    keyed = {"headers": {"Idempotency-Key": "privacy-run-create"}}
    r = await call("POST", "/v1/subjects", writer, json=CANARY, **keyed)
    assert r.status_code == 201, r.text
    again = await call("POST", "/v1/subjects", writer, json=CANARY, **keyed)
    assert again.json() == r.json() and again.headers["idempotent-replayed"] == "true"
    sid = r.json()["subject_id"]
    r = await call(
        "PATCH",
        f"/v1/subjects/{sid}/contact",
        writer,
        headers={"If-Match": r.headers["etag"]},
        json={
            "name": "Kanarienvogel Zx81q-Neu",
            "postal_address": {**CANARY["postal_address"], "street": "Canarystraße 78"},
        },
    )
    assert r.status_code == 200 and r.json()["changed"] == ["name", "postal_address"], r.text

    # -- lawful bases: contract, double opt-in e-mail, explicit phone consent -------------
    r = await call(
        "POST",
        f"/v1/subjects/{sid}/consents",
        writer,
        json={"purpose": "order.delivery", "reference": "Auftrag 2026-4711"},
    )
    assert r.status_code == 201, r.text
    evidence = {**NEWSLETTER_EVIDENCE, "ip": CANARY_IP, "user_agent": CANARY_AGENT}
    r = await call(
        "POST",
        f"/v1/subjects/{sid}/consents",
        writer,
        json={"purpose": "newsletter.email", "evidence": evidence},
    )
    assert r.status_code == 201 and r.json()["status"] == "pending_confirmation", r.text
    newsletter_id = r.json()["consent_id"]
    (token,) = outbox_links(vault.settings.outbox_dir)
    r = await call("GET", f"/confirm/{token}?lang=de")
    assert r.status_code == 200, r.text
    r = await call("POST", "/v1/consents/confirm", json={"token": token})
    assert r.status_code == 200 and r.json()["status"] == "granted", r.text
    r = await call(
        "POST",
        f"/v1/subjects/{sid}/consents",
        writer,
        json={
            "purpose": "offers.phone",
            "evidence": {
                **evidence,
                "touchpoint": "hotline.inbound",
                "method": "recorded_call",
                "explicit": True,
            },
        },
    )
    assert r.status_code == 201 and r.json()["status"] == "granted", r.text

    # -- lookups: allowed, denied, not found; by e-mail, phone, external_ref, subject_id ---
    email, ref = CANARY["email"], CANARY["external_ref"]
    r = await lookup(shop, {"purpose": "order.delivery", "external_ref": ref}, 200)
    assert r.json()["fields"]["name"] == "Kanarienvogel Zx81q-Neu"
    r = await lookup(
        mailer, {"purpose": "newsletter.email", "email": " CANARY.ZX81Q@example.org "}, 200
    )
    assert r.json()["fields"]["email"] == email
    r = await lookup(callcenter, {"purpose": "offers.phone", "phone": "030 98765432"}, 200)
    assert r.json()["fields"]["phone"] == "+493098765432"
    await lookup(
        callcenter, {"purpose": "offers.phone", "subject_id": sid, "fields": ["phone"]}, 200
    )
    denied = [
        (shop, {"purpose": "newsletter.email", "email": email}, 403, "purpose_not_allowed"),
        (callcenter, {"purpose": "offers.sms", "phone": "+493098765432"}, 403, "no_consent"),
        (
            shop,
            {"purpose": "order.delivery", "external_ref": ref, "fields": ["email"]},
            403,
            "field_not_covered",
        ),
        (shop, {"purpose": "canary.zx81q@example.org", "email": email}, 403, "unknown_purpose"),
        (
            mailer,
            {"purpose": "newsletter.email", "email": "canary.zx81q+other@example.org"},
            404,
            "subject_not_found",
        ),
        (
            callcenter,
            {"purpose": "offers.phone", "phone": "+49 30 98765439"},
            404,
            "subject_not_found",
        ),
        (shop, {"purpose": "order.delivery", "external_ref": ref + "-2"}, 404, "subject_not_found"),
        (dpo, {"purpose": "order.delivery", "email": email}, 403, "purpose_not_allowed"),
    ]
    for key, body, status, reason in denied:
        await lookup(key, body, status, reason)

    # -- withdrawal, then the same lookup is denied; consents listed by writer and DPO -----
    r = await call("POST", f"/v1/subjects/{sid}/consents/{newsletter_id}/withdraw", writer)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn", r.text
    await lookup(mailer, {"purpose": "newsletter.email", "email": email}, 403, "consent_withdrawn")
    for key in (writer, dpo):
        r = await call("GET", f"/v1/subjects/{sid}/consents", key)
        assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text
        assert not found_canaries(r.text), "consent listings show no contact data or evidence"

    # -- bad input carrying the canaries -------------------------------------------------
    new = {k: v for k, v in CANARY.items() if k != "external_ref"}  # so only one rule breaks
    bad: list[tuple[str, str, str | None, dict[str, Any], int]] = [
        ("POST", "/v1/subjects", writer, {"json": {**CANARY, "external_ref": "CANARY-ZX81Q"}}, 409),
        ("POST", "/v1/subjects", writer, {"json": {**new, "phone": "+1 98765432"}}, 422),
        (
            "POST",
            "/v1/subjects",
            writer,
            {"json": {**new, "email": "canary.zx81q@@example.org"}},
            422,
        ),
        ("POST", "/v1/subjects", writer, {"json": {**new, "notes": "Kanarienvogel Zx81q"}}, 422),
        (
            "POST",
            "/v1/subjects",
            writer,
            {"json": {**new, "name": "Kanarienvogel Zx81q " * 12}},
            422,
        ),
        (
            "POST",
            "/v1/subjects",
            writer,
            {
                "content": json.dumps(new).encode()[:-9],
                "headers": {"content-type": "application/json"},
            },
            400,
        ),
        (
            "POST",
            "/v1/subjects",
            writer,
            {"json": {**new, "postal_address": {"street": "Canarystraße 77"}}},
            422,
        ),
        ("POST", "/v1/subjects", writer, {"json": {**new, "phone": 3098765432}}, 422),
        ("PATCH", f"/v1/subjects/{sid}/contact", writer, {"json": {"email": "canary.zx81q@"}}, 422),
        ("PATCH", f"/v1/subjects/{sid}/contact", writer, {"json": {"phone": "Kanarienvogel"}}, 422),
        ("GET", "/v1/subjects/canary.zx81q@example.org/consents", writer, {}, 422),
        ("PATCH", "/v1/subjects/CANARY-ZX81Q/contact", writer, {"json": {"name": "x"}}, 422),
        ("GET", "/v1/lookup/canary.zx81q@example.org", shop, {}, 404),
        (
            "POST",
            f"/v1/subjects/{sid}/consents",
            writer,
            {
                "json": {
                    "purpose": "offers.phone",
                    "evidence": {**evidence, "ip": CANARY_IP * 6, "explicit": True},
                }
            },
            422,
        ),
        (
            "POST",
            f"/v1/subjects/{sid}/consents",
            writer,
            {"json": {"purpose": "offers.phone", "evidence": evidence}},
            422,
        ),
        (
            "POST",
            "/v1/lookup",
            shop,
            {"json": {"purpose": "order.delivery", "email": email, "phone": CANARY["phone"]}},
            422,
        ),
        (
            "POST",
            "/v1/lookup",
            shop,
            {"json": {"purpose": "order.delivery", "email": "canary.zx81q@@example.org"}},
            422,
        ),
        (
            "POST",
            "/v1/lookup",
            shop,
            {"json": {"purpose": "order.delivery", "phone": "Kanarienvogel Zx81q"}},
            422,
        ),
        (
            "POST",
            "/v1/lookup",
            shop,
            {"json": {"purpose": "order.delivery", "external_ref": ref, "name": "Kanarienvogel"}},
            422,
        ),
        (
            "POST",
            "/v1/lookup",
            None,
            {"json": {"purpose": "order.delivery", "email": CANARY["email"]}},
            401,
        ),
        (
            "POST",
            "/v1/lookup",
            None,
            {
                "json": {"purpose": "order.delivery", "email": CANARY["email"]},
                "headers": {"Authorization": "Bearer canary.zx81q@example.org"},
            },
            401,
        ),
        ("POST", "/v1/consents/confirm", None, {"json": {"token": "CANARY-ZX81Q" * 3}}, 404),
        ("GET", "/confirm/canary.zx81q@example.org", None, {}, 404),
    ]
    for method, path, key, kwargs, status in bad:
        r = await call(method, path, key, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)


def _canaries_in_response(r: httpx.Response) -> list[str]:
    return found_canaries(r.text + "\n" + json.dumps(dict(r.headers)))


async def test_no_canary_reaches_logs_audit_storage_or_errors(vault, log_stream, caplog):
    """After every flow ran on canary data, no canary spelling is in the JSON logs, in any
    column of the audit trail, in the database at rest (SQLite file + WAL, or pg_dump) or in
    any error answer; and each lookup made is exactly one audit event with its decision."""
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    async with api(vault) as http:
        await _run_every_flow(vault, http, rec)

    # (a) logs: the app's structlog JSON lines, and any stdlib logging of the app
    logs = log_stream.getvalue()
    assert logs.count('"event": "request"') == len(rec.responses), "one access line per request"
    leaking = [line for line in logs.splitlines() if found_canaries(line)]
    assert not leaking, "\n".join(leaking)
    app_records = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))  # the test's client, not the app
    )
    assert not found_canaries(app_records), found_canaries(app_records)

    # (b) the audit trail, every column of every row
    events = await audit_rows(vault)
    for event in events:
        text = " | ".join(str(v) for v in event.values())
        assert not found_canaries(text), (found_canaries(text), event)

    # (d) error answers
    errors = [r for r in rec.responses if r.status_code >= 400]
    assert len(errors) > 30
    for r in errors:
        assert 400 <= r.status_code < 500, (r.request.url.path, r.text)
        if r.request.url.path.startswith("/confirm/"):
            assert r.headers["content-type"].startswith("text/html")
        else:
            assert_problem(r)
        assert not _canaries_in_response(r), (r.request.method, r.request.url.path, r.text)

    # audit events equal accesses: one lookup event per lookup call, in order, with its outcome
    lookups = [e for e in events if e["action"] == LOOKUP]
    assert len(lookups) == len(rec.lookups) == 13
    assert [(e["request_id"], e["decision"], e["reason"]) for e in lookups] == rec.lookups
    for e in lookups:
        assert e["actor_type"] in ("client", "dpo")
        assert e["subject_id"] is None or len(e["subject_id"]) == 36

    # every event that names a consent names that consent's subject: the consent proof
    # finds a consent's events through the subject's index (consent_id is not indexed)
    async with vault.engine.connect() as conn:
        owner = dict((await conn.execute(select(consents.c.id, consents.c.subject_id))).all())
    naming = [e for e in events if e["consent_id"] is not None]
    assert len({e["action"] for e in naming}) >= 5, {e["action"] for e in naming}
    assert [e for e in naming if e["subject_id"] != owner.get(e["consent_id"])] == []

    # (c) the database at rest (last: it disposes the engine's connections)
    raw = await raw_database_bytes(vault)
    assert b"order.delivery" in raw, "positive control: the dump holds the consent rows"
    assert b"Auftrag 2026-4711" not in raw, "a basis's reference is sealed at rest"
    assert not found_canaries(raw), found_canaries(raw)
    # Positive control of the search itself: the confirmation mail does carry the address.
    (mail,) = vault.settings.outbox_dir.glob("*.eml")
    hits = found_canaries(mail.read_bytes())
    assert any(hit.startswith("canary.zx81q@example.org") for hit in hits), hits


#: Free text stored next to a subject: a basis's reference and a consent's notice version.
FREE_TEXT = ("Vertrag Freitext-Qx7 Erika", "Hinweis Freitext-Qx7 Fassung")


async def test_free_text_is_sealed_at_rest_and_gone_after_erasure(vault):
    """A basis's reference and a consent's notice version are shown to whom may see them
    (consent listing, consent proof) but are never plaintext in the database (SQLite file +
    WAL, or pg_dump), and after the subject's erasure nothing of them remains."""
    from tests.support.dsar import erase
    from vault.audit.events import Actor
    from vault.bases.consent_proof import consent_proof
    from vault.bases.consents import Evidence, list_bases, record_basis
    from vault.subjects.store import create_subject

    writer, dpo = Actor("client", "crm"), Actor("dpo", "dpo-office")
    sid = await create_subject(vault, writer, CANARY)
    contract = await record_basis(vault, writer, sid, "order.delivery", reference=FREE_TEXT[0])
    consent = await record_basis(
        vault,
        writer,
        sid,
        "offers.sms",
        evidence=Evidence(
            touchpoint="shop.counter",
            method="signature",
            notice_version=FREE_TEXT[1],
            language="de",
            explicit=True,
        ),
    )
    listed = {b.id: b for b in await list_bases(vault, dpo, sid)}
    assert listed[contract.id].reference == FREE_TEXT[0]
    assert listed[consent.id].evidence["notice_version"] == FREE_TEXT[1]
    proof = await consent_proof(vault, dpo, consent.id)
    assert proof.evidence.notice_version == FREE_TEXT[1]
    raw = await raw_database_bytes(vault)
    assert b"order.delivery" in raw, "positive control: the dump holds the consent rows"
    assert not found_canaries(raw, FREE_TEXT), "sealed at rest"

    await erase(vault, dpo, sid)
    proof = await consent_proof(vault, dpo, consent.id)
    assert proof.evidence.notice_version is None
    assert (await consent_proof(vault, dpo, contract.id)).reference is None
    raw = await raw_database_bytes(vault)
    assert not found_canaries(raw, FREE_TEXT), found_canaries(raw, FREE_TEXT)
    assert not found_canaries(raw), found_canaries(raw)


async def test_progress_lines_and_the_verified_record_carry_no_contact_data_or_ids(vault):
    """Rotation, verification and the retention sweep report through the CLI's progress
    listener: its lines and summary, and the record `--since-checkpoint` reads, hold counts,
    positions and digests only: no canary spelling, no subject id."""
    import io
    import json as _json

    from api.progress import CliProgress
    from tests.support.factories import ADMIN, WRITER
    from tests.support.privacy import CANARY, found_canaries
    from vault.admin.keys import RewrapOptions, rotate
    from vault.audit import chain as audit_chain
    from vault.audit import verify as audit_verify
    from vault.rights.retention import run_retention
    from vault.subjects.store import create_subject

    sid = await create_subject(vault, WRITER, CANARY)
    out = io.StringIO()
    progress = CliProgress(stream=out, tty=False, interval=0.0)
    await rotate(vault, ADMIN, RewrapOptions(batch=1, progress=progress))
    await run_retention(vault, progress=progress)
    await audit_chain.seal_all(vault)
    assert (await audit_verify.verify_chain(vault, progress=progress)).ok
    written = out.getvalue() + _json.dumps(progress.summary(command="test"))
    written += audit_verify.verified_path(vault).read_text()
    assert "progress task=" in written
    assert found_canaries(written) == []
    assert sid not in written
