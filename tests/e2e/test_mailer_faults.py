"""Mailer faults: with the SMTP server down, a change that mails commits and its mail waits
in the mail outbox (issue 20 item 9); sign-in, whose code would arrive too late, answers 503
problem+json for known and unknown addresses alike and stores nothing; once the mail server
is back the same server process delivers every waiting mail once, without a restart."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.support.factories import NEWSLETTER_EVIDENCE, person
from tests.support.faults import TinySmtp
from tests.support.server import Served, serve
from vault.storage.audit_tables import audit_events
from vault.storage.db import make_engine
from vault.storage.mail_tables import mail_outbox
from vault.storage.rights_tables import self_service_challenges
from vault.storage.tables import consents

pytestmark = [pytest.mark.postgres]

_LINK_RE = re.compile(r"/confirm/([A-Za-z0-9_-]{20,100})")
_CODE_RE = re.compile(r"(\d{6})\s*$")


async def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (consents, self_service_challenges, audit_events, mail_outbox)
            }
    finally:
        await engine.dispose()


def _parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _wait_for_mail(smtp: TinySmtp, count: int, timeout: float = 10.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(got := smtp.received()) >= count:
            return got
        time.sleep(0.05)
    raise AssertionError(f"expected {count} mails, the SMTP server has {len(smtp.received())}")


def _assert_unavailable(
    served: Served, status: int, headers: dict[str, str], body: Any, secrets: list[str]
) -> None:
    assert status == 503, body
    assert headers["content-type"].startswith("application/problem+json")
    assert headers.get("retry-after"), headers
    assert body["status"] == 503 and body["type"] == "urn:tresor:problem:unavailable"
    text = str(body).lower() + str(headers).lower()
    for secret in secrets:
        assert secret.lower() not in text


def test_mailer_down_queues_mail_refuses_sign_in_and_recovers(postgres, tmp_path):
    """SMTP down: a double opt-in grant and a request extension commit (201 / 200) and their
    two mails wait in the outbox, nothing reaches the server; sign-in codes (known and
    unknown address alike) answer 503 and store no challenge. With SMTP back on the same
    address, both waiting mails arrive once each and sign-in works again."""
    asyncio.run(postgres.truncate())
    smtp = TinySmtp()
    smtp.start()
    port = smtp.port
    try:
        with serve(
            tmp_path,
            TRESOR_DATABASE_URL=postgres.url,
            TRESOR_SMTP_URL=f"smtp://127.0.0.1:{port}",
            TRESOR_RETENTION_INTERVAL="0",
            TRESOR_MAIL_INTERVAL="0.5",
            TRESOR_MAIL_RETRY_SECONDS="1",
            TRESOR_MAIL_RETRY_MAX_SECONDS="2",
            TRESOR_LOG_LEVEL="WARNING",
        ) as served:
            writer = served.client("crm", "writer")
            dpo = served.client("datenschutz", "dpo")
            p = person(61)
            status, body = served.call("POST", "/v1/subjects", writer, p)
            assert status == 201, body
            sid = body["subject_id"]
            status, body = served.call(
                "POST",
                "/v1/requests",
                dpo,
                {"subject_id": sid, "type": "access", "channel": "letter"},
            )
            assert status == 201, body
            request_id, due_before = body["request_id"], body["due_at"]
            secrets = [p["email"], p["name"], p["phone"]]

            smtp.stop()  # the mail server goes down; the port now refuses connections
            before = asyncio.run(_counts(postgres.url))

            # Double opt-in: recorded, pending; its confirmation mail waits in the outbox.
            grant = {"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE}
            status, body = served.call("POST", f"/v1/subjects/{sid}/consents", writer, grant)
            assert status == 201 and body["status"] == "pending_confirmation", body
            assert not any(s.lower() in str(body).lower() for s in secrets)

            # Request extension: the deadline moves; the customer's notice waits too.
            status, body = served.call(
                "POST",
                f"/v1/requests/{request_id}/extend",
                dpo,
                {"reason": "Umfangreiche Datenbestände", "months": 2},
            )
            assert status == 200 and body["due_at"] != due_before, body

            # Sign-in: a known and an unknown address get the same 503, and no code is promised.
            answers = []
            for address in (p["email"], "niemand.bekannt@example.org"):
                status, headers, body = served.call_with_headers(
                    "POST", "/self/v1/session", None, {"email": address}
                )
                _assert_unavailable(served, status, headers, body, secrets)
                answers.append(
                    (
                        status,
                        headers.get("retry-after"),
                        body["type"],
                        body["title"],
                        body["detail"],
                    )
                )
            assert answers[0] == answers[1]

            after = asyncio.run(_counts(postgres.url))
            assert after["consents"] == before["consents"] + 1
            assert after["mail_outbox"] == before["mail_outbox"] + 2
            assert after["self_service_challenges"] == before["self_service_challenges"]
            assert smtp.received() == []

            smtp = TinySmtp(port)
            smtp.start()  # the mail server is back on the same address; no restart of Tresor

            waited = _wait_for_mail(smtp, 2, timeout=60)
            time.sleep(1.5)  # a retry that came late must not send either mail twice
            assert len(smtp.received()) == 2
            mails = [_parsed(raw) for raw in waited]
            assert {m["To"] for m in mails} == {p["email"]}
            assert any(_LINK_RE.search(raw.decode()) for raw in waited)
            assert len({m["Message-ID"] for m in mails}) == 2

            for address in ("niemand.bekannt@example.org", p["email"]):
                status, body = served.call("POST", "/self/v1/session", None, {"email": address})
                assert status == 202, body
            with_code = _wait_for_mail(smtp, 3, timeout=30)
            time.sleep(0.3)  # an unknown address must not get a mail, not even a late one
            assert len(smtp.received()) == 3
            code_mail = _parsed(with_code[2])
            assert code_mail["To"] == p["email"]
            match = _CODE_RE.search(str(code_mail["Subject"]))
            assert match
            status, body = served.call(
                "POST",
                "/self/v1/session/verify",
                None,
                {"email": p["email"], "code": match.group(1)},
            )
            assert status == 200 and body["token"], body
    finally:
        smtp.stop()
