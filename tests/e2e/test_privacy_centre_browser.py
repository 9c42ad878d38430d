"""The whole self-service flow in Debian's Chromium against the served binary."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.browser import chromium_page, require_browser, serve

EMAIL = "erika.mustermann@example.org"
SMS_EVIDENCE = {
    "touchpoint": "shop.counter",
    "method": "paper_form",
    "notice_version": "v3",
    "language": "de",
    "explicit": True,
}


def test_a_customer_walks_the_privacy_centre_in_a_browser(tmp_path: Path):
    """Sign in with the mailed code, see the data and who read it, withdraw a consent,
    download the export and request erasure; afterwards the vault reveals nothing."""
    require_browser()
    with serve(tmp_path) as tresor:
        writer = tresor.client("crm", "writer")
        shop = tresor.client("shop", "lookup", "order.delivery", "offers.sms")
        status, body = tresor.call(
            "POST",
            "/v1/subjects",
            writer,
            {
                "email": EMAIL,
                "name": "Erika Mustermann",
                "phone": "0221 4711000",
                "postal_address": {
                    "street": "Domkloster 4",
                    "postal_code": "50667",
                    "city": "Köln",
                    "country": "DE",
                },
            },
        )
        assert status == 201, body
        sid = body["subject_id"]
        for basis in (
            {"purpose": "offers.sms", "evidence": SMS_EVIDENCE},
            {"purpose": "order.delivery", "reference": "order 1"},
        ):
            status, body = tresor.call("POST", f"/v1/subjects/{sid}/consents", writer, basis)
            assert status == 201, body
        sms_lookup = {"purpose": "offers.sms", "subject_id": sid, "contact": {"brand": "tresor"}}
        status, body = tresor.call("POST", "/v1/lookup", shop, sms_lookup)
        assert status == 200 and body["fields"]["phone"] == "+492214711000", body

        with chromium_page() as page:
            # Sign in: address, then the code from the newest mail in the outbox.
            page.goto(tresor.base + "/privacy")
            assert page.locator("html").get_attribute("lang") == "de"
            seen = tresor.mail_files()
            page.get_by_label("E-Mail-Adresse oder Telefonnummer").fill(EMAIL)
            page.get_by_role("button", name="Code anfordern").click()
            code = tresor.wait_for_code(seen)
            page.get_by_label("Code aus der E-Mail").fill(code)
            page.keyboard.press("Enter")  # submitting by keyboard
            page.get_by_role("heading", name="Meine Kontaktdaten").wait_for()

            # My data and who accessed it.
            contact = page.locator("#contact-data")
            assert EMAIL in contact.inner_text() and "Köln" in contact.inner_text()
            access = page.locator("#access-log")
            assert "shop" in access.inner_text() and "Angebote per SMS" in access.inner_text()

            # Withdraw the SMS consent in one click; a lookup is denied at once.
            withdraw = page.get_by_role("button", name="Einwilligung widerrufen: Angebote per SMS")
            withdraw.focus()
            page.keyboard.press("Enter")  # one keystroke, no pointer needed
            page.get_by_role("status").filter(has_text="widerrufen").wait_for()
            status, body = tresor.call("POST", "/v1/lookup", shop, sms_lookup)
            assert status == 403 and body["reason"] == "consent_withdrawn", body

            # Download the export.
            with page.expect_download() as download_info:
                page.get_by_role("link", name="Datenkopie herunterladen (JSON)").click()
            download = download_info.value
            exported = Path(download.path()).read_text(encoding="utf-8")
            assert download.suggested_filename.endswith(".json")
            assert EMAIL in json.dumps(json.loads(exported))

            # Request erasure, through the confirmation step.
            page.get_by_role("link", name="Löschung beantragen …").click()
            page.get_by_label("Ja, ich möchte, dass meine Daten gelöscht werden.").check()
            page.get_by_role("button", name="Endgültig löschen").click()
            page.get_by_role("status").filter(has_text="gelöscht").wait_for()
            assert page.get_by_role("button", name="Code anfordern").is_visible()

        status, body = tresor.call(
            "POST", "/v1/lookup", shop, {"purpose": "order.delivery", "subject_id": sid}
        )
        assert status == 403 and body["reason"] == "subject_erased", body
        status, body = tresor.call(
            "POST", "/v1/lookup", shop, {"purpose": "order.delivery", "email": EMAIL}
        )
        assert status == 404, body
