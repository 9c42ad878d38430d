"""The DPO console in a real browser (Playwright, Debian's Chromium) against `tresor serve`.

The DPO signs in with a dpo key, searches the audit trail for one customer, sees which
system read which fields for which purpose, and opens the proof of the consent that the
reads relied on. Runs headless with the system Chromium; no browser is downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium_page, require_browser
from tests.support.server import Served, serve

IP = "203.0.113.99"
UA = "Mozilla/5.0 (Linux; Android 15) Mobile Safari/537.36"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, TRESOR_RETENTION_INTERVAL="0") as server:
        yield server


def _seed(served: Served) -> dict[str, str]:
    """A customer with an SMS-marketing consent (with evidence) and reads by an SMS gateway."""
    writer = served.client("crm", "writer")
    # Granted incident.notice, the gateway's three SMS (20 points each) pass the 25-point
    # basket as `critical`: the console is under test here, not the basket.
    gateway = served.client("sms-gateway", "lookup", "offers.sms", "incident.notice")
    dpo = served.client("datenschutz", "dpo")
    status, body = served.call(
        "POST",
        "/v1/subjects",
        writer,
        {"email": "jana.schulz@example.org", "phone": "+49 30 5550142", "name": "Jana Schulz"},
    )
    assert status == 201, body
    sid = body["subject_id"]
    status, body = served.call(
        "POST",
        f"/v1/subjects/{sid}/consents",
        writer,
        {
            "purpose": "offers.sms",
            "evidence": {
                "touchpoint": "shop.counter",
                "method": "signature",
                "notice_version": "2026-10-sms",
                "language": "de",
                "explicit": True,
                "ip": IP,
                "user_agent": UA,
            },
        },
    )
    assert status == 201, body
    consent_id = body["consent_id"]
    for _ in range(3):
        status, body = served.call(
            "POST",
            "/v1/lookup",
            gateway,
            {
                "purpose": "offers.sms",
                "subject_id": sid,
                "contact": {"brand": "tresor", "priority": "critical"},
            },
        )
        assert status == 200, body
    status, body = served.call(
        "POST", "/v1/lookup", gateway, {"purpose": "order.delivery", "subject_id": sid}
    )
    assert status == 403 and body["reason"] == "purpose_not_allowed"
    return {"sid": sid, "consent_id": consent_id, "dpo": dpo}


def test_dpo_signs_in_finds_a_customers_reads_and_opens_the_consent_proof(served):
    """Sign in with a dpo key, search by subject id, see the reads, open the consent proof."""
    require_browser()
    seeded = _seed(served)
    base = served.base
    with chromium_page(locale="en-GB") as page:
        context = page.context
        page.goto(base + "/dpo")
        assert "/dpo/signin" in page.url
        assert page.locator("html").get_attribute("lang") == "en"
        key_field = page.get_by_label("API key (dpo)")
        key_field.fill("tresor_not-the-key")
        key_field.press("Enter")  # keyboard only
        assert page.get_by_role("alert").inner_text().startswith("The key is not valid")

        page.get_by_label("API key (dpo)").fill(seeded["dpo"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/dpo/audit.*"))
        assert "datenschutz" in page.locator("header").inner_text()
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["tresor_dpo"]["httpOnly"] and cookies["tresor_dpo"]["sameSite"] == "Strict"

        page.get_by_label("Subject id").fill(seeded["sid"])
        page.get_by_label("Action", exact=True).select_option("client:contact:lookup")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url(re.compile(r".*subject_id=.*"))
        rows = page.locator("#audit-results tbody tr")
        assert rows.count() == 4
        texts = [rows.nth(i).inner_text() for i in range(4)]
        assert all("sms-gateway" in t and "client:contact:lookup" in t for t in texts)
        allowed = [t for t in texts if "offers.sms" in t]
        assert len(allowed) == 3 and all("phone, name" in t or "name, phone" in t for t in allowed)
        denied = [t for t in texts if "order.delivery" in t]
        assert len(denied) == 1 and "purpose_not_allowed" in denied[0]

        page.get_by_role("link", name=f"Open proof {seeded['consent_id']}").first.click()
        page.wait_for_url(re.compile(rf".*/dpo/consents/{seeded['consent_id']}/proof.*"))
        assert page.get_by_role("heading", name="Proof of consent").is_visible()
        evidence = page.locator("#evidence").inner_text()
        assert "shop.counter" in evidence and "signature" in evidence
        assert "2026-10-sms" in evidence and IP in evidence and UA in evidence
        history = page.locator("#history").inner_text()
        assert "recorded" in history and "client:crm" in history
        events = page.locator("#proof-events-table").inner_text()
        assert events.count("client:contact:lookup") == 3 and "client:consent:grant" in events

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r".*/dpo/signin.*"))
        assert "You are signed out." in page.inner_text("main")
        page.goto(base + "/dpo/audit")
        assert "/dpo/signin" in page.url
