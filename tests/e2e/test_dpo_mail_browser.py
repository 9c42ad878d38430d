"""The DPO sends a failed mail again from the console, in a real browser (Playwright,
Debian's Chromium) against `tresor serve`: the mail server was down long enough for a
double opt-in confirmation to be given up; once it is back, the DPO follows the failed
count on the request queue to the mail page, gives a reason and sends the mail again, and
the customer's confirmation mail arrives once."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium_page, require_browser
from tests.support.factories import NEWSLETTER_EVIDENCE, person
from tests.support.faults import TinySmtp
from tests.support.server import Served, serve


@pytest.fixture
def smtp() -> Iterator[TinySmtp]:
    server = TinySmtp()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def served(tmp_path: Path, smtp: TinySmtp) -> Iterator[Served]:
    # Retries end after 3.6 s, so a mail is given up while the test waits.
    with serve(
        tmp_path,
        TRESOR_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
        TRESOR_RETENTION_INTERVAL="0",
        TRESOR_MAIL_INTERVAL="0.5",
        TRESOR_MAIL_RETRY_SECONDS="1",
        TRESOR_MAIL_RETRY_MAX_SECONDS="1",
        TRESOR_MAIL_RETRY_HOURS="0.001",
    ) as server:
        yield server


def _failed_mails(served: Served, dpo: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, body = served.call("GET", "/v1/mail?status=failed", dpo)
        assert status == 200, body
        if body["mails"]:
            return list(body["mails"])
        time.sleep(0.3)
    raise AssertionError("the confirmation mail was never given up")


def test_dpo_sends_a_failed_confirmation_mail_again(served, smtp):
    """Server down: the confirmation mail fails; server up: the DPO retries it from the
    page reached through the queue's failed count, and one copy arrives."""
    require_browser()
    writer = served.client("crm", "writer")
    dpo = served.client("datenschutz", "dpo")
    p = person(71)
    status, body = served.call("POST", "/v1/subjects", writer, p)
    assert status == 201, body
    sid = body["subject_id"]
    smtp.stop()
    grant = {"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE}
    status, body = served.call("POST", f"/v1/subjects/{sid}/consents", writer, grant)
    assert status == 201, body
    (mail,) = _failed_mails(served, dpo)
    assert mail["retriable"] is True and mail["subject_id"] == sid
    smtp.start()  # the mail server is back on the same port
    assert smtp.received() == []

    with chromium_page(locale="en-GB") as page:
        page.goto(f"{served.base}/dpo/signin?lang=en")
        page.locator("#api_key").fill(dpo)
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(re.compile(r".*/dpo/audit.*"))
        page.goto(f"{served.base}/dpo/requests?lang=en")
        page.locator("#mail-failed a").click()
        page.wait_for_url(re.compile(r".*/dpo/mail\?.*status=failed.*"))
        row = page.locator(f'tr[data-mail="{mail["id"]}"]')
        assert "Double opt-in confirmation" in row.inner_text()
        assert p["email"] not in page.content()
        row.locator(".mail-retry input[name=reason]").fill("Mail server repaired")
        row.locator(".mail-retry button").click()
        page.wait_for_url(re.compile(r".*done=retry.*"))
        assert "queued again" in page.inner_text("main")
        assert page.locator("#mail-empty").is_visible()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not smtp.received():
        time.sleep(0.1)
    (raw,) = smtp.received()
    assert p["email"].encode() in raw
    status, body = served.call("GET", "/v1/mail", dpo)
    assert status == 200 and body["mails"] == [], body
