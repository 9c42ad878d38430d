"""The DPO's workplace in a real browser (Playwright, Debian's Chromium) against `tresor serve`.

A customer's letter asks to restrict the processing of their data. The DPO finds the
customer by the e-mail address in the letter, opens the request from the queue, reads the
deadline rules and extends, verifies the identity, approves (the subject is restricted),
sees the request completed with its history, later lifts the restriction (the customer is
mailed), and downloads the audit trail of that customer. German and English.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium_page, require_browser
from tests.support.server import Served, serve

ADDRESS = "erika.musterfrau@example.org"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, TRESOR_RETENTION_INTERVAL="0") as server:
        yield server


def _seed(served: Served) -> dict[str, str]:
    writer = served.client("crm", "writer")
    dpo = served.client("datenschutz", "dpo")
    status, body = served.call(
        "POST",
        "/v1/subjects",
        writer,
        {"email": ADDRESS, "phone": "+49 30 5550199", "external_ref": "K-4711"},
    )
    assert status == 201, body
    sid = body["subject_id"]
    status, body = served.call(
        "POST",
        "/v1/requests",
        dpo,
        {"subject_id": sid, "type": "restriction", "channel": "letter"},
    )
    assert status == 201, body
    return {"sid": sid, "rid": body["request_id"], "dpo": dpo}


def _sign_in(page, base: str, key: str, lang: str) -> None:
    page.goto(f"{base}/dpo/signin?lang={lang}")
    page.locator("#api_key").fill(key)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r".*/dpo/audit.*"))


def test_dpo_walks_a_request_from_the_letter_to_completed_and_lifts_the_restriction(served):
    """Find by e-mail, open the request, extend (rules shown), verify, approve, completed;
    lift the restriction (mailed); export the customer's trail as CSV."""
    require_browser()
    seeded = _seed(served)
    base = served.base
    with chromium_page(locale="de-DE") as page:
        _sign_in(page, base, seeded["dpo"], "de")

        # The letter names an e-mail address: find the customer (German page).
        page.get_by_role("link", name="Person finden").click()
        page.get_by_label("Suchen nach").select_option("email")
        page.get_by_label("E-Mail, Telefon oder Kundennummer").fill(ADDRESS.upper())
        page.get_by_role("button", name="Finden").click()
        page.wait_for_url(re.compile(rf".*/dpo/subjects/{seeded['sid']}.*"))
        main = page.inner_text("main")
        assert ADDRESS not in page.content() and "5550199" not in page.content()
        assert "Einschränkung" in main  # the open request's type

        # The request, from the subject's page; then in English.
        page.get_by_role("link", name=f"Öffnen {seeded['rid']}").click()
        page.wait_for_url(re.compile(rf".*/dpo/requests/{seeded['rid']}.*"))
        page.get_by_role("link", name="English").click()
        assert page.locator("#request-status").get_attribute("data-status") == (
            "identity_verification"
        )
        rules = page.locator("#extension-rules").inner_text()
        assert "only within the first month after receipt" in rules
        page.get_by_label("Extend by").select_option("1")
        page.get_by_label("Reason for the extension (the customer reads it)").fill(
            "Letters from two archives"
        )
        page.get_by_role("button", name="Extend the deadline").click()
        page.wait_for_url(re.compile(r".*done=extend.*"))
        assert "The deadline is extended" in page.get_by_role("status").inner_text()

        page.get_by_role("button", name="Identity verified").click()
        page.wait_for_url(re.compile(r".*done=verify.*"))
        assert page.locator("#request-status").get_attribute("data-status") == "in_review"

        page.get_by_role("button", name="Approve and carry out").click()
        page.wait_for_url(re.compile(r".*done=approve.*"))
        assert page.locator("#request-status").get_attribute("data-status") == "completed"
        history = page.locator("#request-history").inner_text()
        for event in ("received", "extended", "verified", "approved", "completed"):
            assert event in history, event
        assert page.locator("form.act").count() == 0

        # The copy button copies the whole id (the cell shows eight characters).
        copy = page.locator("#request-facts button.copy").first
        assert copy.get_attribute("data-copy") == seeded["rid"]
        copy.click()
        page.wait_for_function(
            "document.querySelector('#request-facts button.copy').dataset.copied"
        )

        # The subject is restricted now: lift it from the subject's page.
        page.get_by_role("link", name="Open subject").click()
        page.wait_for_url(re.compile(rf".*/dpo/subjects/{seeded['sid']}.*"))
        assert page.locator("#subject-status").get_attribute("data-status") == "restricted"
        before = served.mail_files()
        page.get_by_label("Reason (the customer reads it)").fill("Accuracy confirmed")
        page.get_by_role("button", name="Lift the restriction").click()
        page.wait_for_url(re.compile(r".*done=lifted.*"))
        assert page.locator("#subject-status").get_attribute("data-status") == "active"
        new = served.mail_files() - before
        mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in new]
        lifted = [m for m in mails if "restriction" in str(m["Subject"])]
        assert len(lifted) == 1 and lifted[0]["To"] == ADDRESS

        # Everything about the customer on the trail, exported as CSV.
        page.get_by_role("link", name="Everything about this person in the audit trail").click()
        page.wait_for_url(re.compile(r".*/dpo/audit\?.*subject_id=.*"))
        with page.expect_download() as info:
            page.locator("#audit-export a", has_text="CSV").click()
        text = Path(info.value.path()).read_text()
        assert "dpo:request:approve" in text and "dpo:subject:lift_restriction" in text
        assert ADDRESS not in text
