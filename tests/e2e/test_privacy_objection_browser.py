"""Art. 21(1) in the privacy centre, in Chromium at 390 px: a customer whose data is used on
a legitimate interest ticks the purpose, writes their grounds and files the objection; it
becomes the request the DPO decides (in review), and meanwhile lookups for the purpose are
restricted (Art. 18(1)(d)). The form fits the phone (no horizontal scrolling, the button
whole on screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.browser import chromium_page, require_browser, serve

EMAIL = "widerspruch.kundin@example.org"
GROUNDS = "Ich lebe unter einer Auskunftssperre.\nBitte keine Benachrichtigungen."

_FITS = """() => {
  const width = document.documentElement.clientWidth;
  const button = document.querySelector('#object-li-submit');
  button.scrollIntoView({block: 'center'});
  const box = button.getBoundingClientRect();
  const left = box.left + window.scrollX, right = box.right + window.scrollX;
  return {scroll: document.documentElement.scrollWidth, width, left, right,
          visible: box.width > 0 && box.height > 0};
}"""


def _seed(tresor: Any) -> tuple[str, str, str]:
    """A customer with a legitimate-interest basis; the DPO's and a notifier's keys."""
    writer = tresor.client("crm", "writer", "incident.notice")
    dpo = tresor.client("datenschutz", "dpo")
    notifier = tresor.client("notifier", "lookup", "incident.notice")
    status, body = tresor.call(
        "POST", "/v1/subjects", writer, {"email": EMAIL, "name": "Kim Widerspruch"}
    )
    assert status == 201, body
    sid = body["subject_id"]
    status, body = tresor.call(
        "POST",
        f"/v1/subjects/{sid}/consents",
        writer,
        {"purpose": "incident.notice", "reference": "recall R-7"},
    )
    assert status == 201, body
    return sid, dpo, notifier


def _lookup(tresor: Any, sid: str, key: str) -> tuple[int, Any]:
    return tresor.call(
        "POST",
        "/v1/lookup",
        key,
        {
            "purpose": "incident.notice",
            "subject_id": sid,
            "contact": {"brand": "tresor", "priority": "critical"},
        },
    )


def test_a_customer_files_an_art_21_1_objection_on_a_phone(tmp_path: Path):
    """The objection form lists the legitimate-interest purpose; filing it shows the
    request in review in the customer's list, the DPO finds it with the purpose, and
    lookups for the purpose are denied `subject_restricted` until the DPO decides."""
    require_browser()
    with serve(tmp_path) as tresor:
        sid, dpo, notifier = _seed(tresor)
        assert _lookup(tresor, sid, notifier)[0] == 200
        with chromium_page() as page:
            page.set_viewport_size({"width": 390, "height": 800})
            page.goto(f"{tresor.base}/privacy?lang=de")
            seen = tresor.mail_files()
            page.locator("input[name=value]").fill(EMAIL)
            page.locator("form[action^='/privacy/sign-in'] button[type=submit]").click()
            code = tresor.wait_for_code(seen)
            page.locator("input[name=code]").fill(code)
            page.keyboard.press("Enter")
            page.locator("#object-li").wait_for()
            fits = page.evaluate(_FITS)
            assert fits["scroll"] <= fits["width"] and fits["visible"], fits
            assert fits["left"] >= 0 and fits["right"] <= fits["width"] + 0.5, fits
            assert "Widerspruch gegen die Verarbeitung" in page.locator("#object-li").inner_text()
            page.locator("#object-li-submit").click()  # nothing ticked: asked to choose
            page.locator("#object-li").wait_for()
            assert "mindestens einen Zweck" in page.content()
            page.locator("#object-li input[name=purposes]").check()
            page.locator("#object-li-grounds").fill(GROUNDS)
            page.locator("#object-li-submit").click()
            row = page.locator("#requests [data-type=legitimate_interest_objection]")
            row.wait_for()
            assert row.locator("[data-status]").get_attribute("data-status") == "in_review"
        status, body = tresor.call(
            "GET", f"/v1/requests?subject_id={sid}&type=legitimate_interest_objection", dpo
        )
        assert status == 200, body
        (item,) = body["items"]
        assert item["status"] == "in_review" and item["channel"] == "self_service"
        status, body = _lookup(tresor, sid, notifier)
        assert status == 403 and body["reason"] == "subject_restricted", body
