"""Contact preferences set in the privacy centre in Debian's Chromium, honoured by lookups
against the served binary (which runs on the real clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.browser import chromium_page, require_browser, serve

EMAIL = "max.preferenz@example.org"
ZONE = "Asia/Tokyo"


def _hhmm(at: datetime) -> str:
    return at.strftime("%H:%M")


def test_quiet_hours_and_own_cap_set_in_the_browser_are_honoured_by_lookups(tmp_path: Path):
    """The customer signs in, sets SMS quiet hours around the current Tokyo time and an own
    cap of 5 points; an SMS lookup is then denied contact_quiet_hours, a letter passes once
    and the next is denied contact_cap_reached."""
    require_browser()
    with serve(tmp_path) as tresor:
        writer = tresor.client("crm", "writer")
        shop = tresor.client("shop", "lookup", "order.delivery")
        status, body = tresor.call(
            "POST",
            "/v1/subjects",
            writer,
            {
                "email": EMAIL,
                "name": "Max Präferenz",
                "phone": "0221 4711001",
                "postal_address": {
                    "street": "Domkloster 5",
                    "postal_code": "50667",
                    "city": "Köln",
                    "country": "DE",
                },
            },
        )
        assert status == 201, body
        sid = body["subject_id"]
        status, body = tresor.call(
            "POST",
            f"/v1/subjects/{sid}/consents",
            writer,
            {"purpose": "order.delivery", "reference": "order 1"},
        )
        assert status == 201, body

        # A quiet window from one hour before to two hours after now, in Tokyo time (it may
        # span midnight; the vault handles that).
        local_now = datetime.now(UTC).astimezone(ZoneInfo(ZONE))
        start = _hhmm(local_now - timedelta(hours=1))
        end = _hhmm(local_now + timedelta(hours=2))

        with chromium_page() as page:
            page.goto(tresor.base + "/privacy")
            seen = tresor.mail_files()
            page.get_by_label("E-Mail-Adresse oder Telefonnummer").fill(EMAIL)
            page.get_by_role("button", name="Code anfordern").click()
            code = tresor.wait_for_code(seen)
            page.get_by_label("Code aus der E-Mail").fill(code)
            page.keyboard.press("Enter")
            page.get_by_role("heading", name="Meine Kontaktdaten").wait_for()

            page.get_by_role("link", name="Bevorzugte Kanäle, Ruhezeiten").click()
            page.get_by_role("heading", name="Wie und wann wir Sie kontaktieren").wait_for()
            page.get_by_label("Ihre Zeitzone").select_option(ZONE)
            page.locator("#quiet-sms-start").fill(start)
            page.locator("#quiet-sms-end").fill(end)
            page.get_by_label("Punkte im Monat").fill("5")
            page.get_by_role("button", name="Einstellungen speichern").click()
            page.get_by_role("status").filter(has_text="gespeichert").wait_for()
            assert page.locator("#quiet-sms-start").input_value() == start
            assert page.locator("#pref-cap").input_value() == "5.0"
            assert page.locator("#pref-history li").count() == 1

        sms = {
            "purpose": "order.delivery",
            "subject_id": sid,
            "contact": {"brand": "tresor", "channel": "sms"},
        }
        status, body = tresor.call("POST", "/v1/lookup", shop, sms)
        assert status == 403 and body["reason"] == "contact_quiet_hours", body
        letter = {
            "purpose": "order.delivery",
            "subject_id": sid,
            "contact": {"brand": "tresor", "channel": "letter"},
        }
        status, body = tresor.call("POST", "/v1/lookup", shop, letter)
        assert status == 200 and body["contact"]["points"] == 3, body
        status, body = tresor.call("POST", "/v1/lookup", shop, letter)
        assert status == 403 and body["reason"] == "contact_cap_reached", body
