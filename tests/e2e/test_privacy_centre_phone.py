"""The privacy centre on a phone: every page at 390 and 320 px in Chromium, German and
English, without horizontal scrolling and with every action button fully on screen: the
sign-in and code pages, the signed-in pages, the sign-in link page (mailed while code
sign-in is locked) and the page of a change of address (linked from the notice)."""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.browser import chromium_page, require_browser, serve

#: A long address and street, the kind that pushes a layout wider than a phone.
EMAIL = "maximiliane.mustermann-schnarrenberger@beispiel-versandhandel.example.org"
EVIDENCE = {
    "touchpoint": "shop.counter",
    "method": "paper_form",
    "notice_version": "v3",
    "language": "de",
    "explicit": True,
}
#: Every page a signed-in customer reaches (the sign-in and code pages are walked first).
SIGNED_IN_PAGES = (
    "/privacy",
    "/privacy/preferences",
    "/privacy/followups",
    "/privacy/export",
    "/privacy/erase",
)

_LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const actions = [...document.querySelectorAll('button, a.button, input[type=submit]')]
    .filter(el => !el.closest('.skip'));
  const off = actions.map(el => {
    el.scrollIntoView({block: 'center', inline: 'nearest'});
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    const hidden = box.width === 0 || box.height === 0 || style.visibility === 'hidden';
    const left = box.left + window.scrollX, right = box.right + window.scrollX;
    return (hidden || left < 0 || right > width + 0.5)
      ? (el.textContent.trim() || el.getAttribute('aria-label')) + ' ' + left + '-' + right
      : null;
  }).filter(Boolean);
  window.scrollTo(0, 0);
  return {scroll: document.documentElement.scrollWidth, width, actions: actions.length, off};
}"""


def _check(page: Any, where: str) -> int:
    """No horizontal scrolling and every action button visible; returns the button count."""
    layout = page.evaluate(_LAYOUT)
    assert layout["scroll"] <= layout["width"], (where, layout)
    assert not layout["off"], (where, layout["off"])
    return int(layout["actions"])


def _seed(tresor: Any) -> tuple[str, str, str]:
    writer = tresor.client("crm", "writer", "order.delivery")
    shop = (
        tresor.cli(
            "clients",
            "create",
            "shop-backend",
            "--role",
            "lookup",
            "--purpose",
            "order.delivery",
            "--display-name",
            "Online-Shop",
        )
        .strip()
        .splitlines()[-1]
    )
    status, body = tresor.call(
        "POST",
        "/v1/subjects",
        writer,
        {
            "email": EMAIL,
            "name": "Maximiliane Mustermann-Schnarrenberger",
            "phone": "0221 4711000",
            "postal_address": {
                "street": "Hohenzollernring-Nebenstraßenverbindungsweg 123",
                "postal_code": "50667",
                "city": "Köln",
                "country": "DE",
            },
        },
    )
    assert status == 201, body
    sid = body["subject_id"]
    for basis in (
        {"purpose": "offers.sms", "evidence": EVIDENCE},
        {"purpose": "order.delivery", "reference": "order 1"},
    ):
        status, body = tresor.call("POST", f"/v1/subjects/{sid}/consents", writer, basis)
        assert status == 201, body
    start = datetime.now(UTC) + timedelta(days=1)
    followup = {
        "subject_id": sid,
        "purpose": "order.delivery",
        "brand": "tresor",
        "touchpoint": "hotline.inbound",
        "note": "order_question",
        "due_from": start.isoformat(),
        "due_until": (start + timedelta(hours=8)).isoformat(),
    }
    status, body = tresor.call("POST", "/v1/followups", writer, followup)
    assert status == 201, body
    lookup = {"purpose": "order.delivery", "subject_id": sid}
    status, body = tresor.call("POST", "/v1/lookup", shop, lookup)
    assert status == 200, body
    return sid, writer, shop


def _mailed_link(tresor: Any, seen: set[Path], path: str) -> str:
    """The first link to `path` in a mail that was not in `seen`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for mail in sorted(tresor.mail_files() - seen, key=lambda p: p.stat().st_mtime_ns):
            msg = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
            found = re.findall(rf"({path}[A-Za-z0-9_-]+)", msg.get_body(("plain",)).get_content())
            if found:
                return str(found[0])
        time.sleep(0.05)
    raise AssertionError(f"no mail with a link to {path} arrived")


def _sign_in_link(tresor: Any) -> str:
    """Ten wrong codes lock the customer's code sign-in; the next request mails a link."""
    for body in ({"email": EMAIL}, {"phone": "0221 4711000"}):
        status, _ = tresor.call("POST", "/self/v1/session", None, body)
        assert status == 202
        for i in range(5):
            guess = {**body, "code": f"{900000 + i}"}
            tresor.call("POST", "/self/v1/session/verify", None, guess)
    seen = tresor.mail_files()
    status, _ = tresor.call("POST", "/self/v1/session", None, {"email": EMAIL})
    assert status == 202
    return _mailed_link(tresor, seen, "/privacy/sign-in-link/")


def _identity_link(tresor: Any, sid: str, writer: str, shop: str) -> str:
    """The CRM changes the customer's e-mail address; the notice to the old one links to
    the page where the customer confirms or objects."""
    lookup = {"purpose": "order.delivery", "subject_id": sid}
    status, headers, body = tresor.call_with_headers("POST", "/v1/lookup", shop, lookup)
    assert status == 200, body
    seen = tresor.mail_files()
    change = urllib.request.Request(
        f"{tresor.base}/v1/subjects/{sid}/contact",
        method="PATCH",
        data=json.dumps({"email": "neue.adresse@example.org"}).encode(),
        headers={
            "Authorization": f"Bearer {writer}",
            "Content-Type": "application/json",
            "If-Match": headers["etag"],
        },
    )
    with urllib.request.urlopen(change, timeout=10) as answer:
        assert answer.status == 200
    return _mailed_link(tresor, seen, "/privacy/identity/")


def test_every_privacy_centre_page_fits_a_phone(tmp_path: Path):
    """At 390 and 320 px, in German and English: sign-in, code, overview (with consents,
    access log and a request), preferences, follow-ups, export, erasure, sign-in link and
    address-change pages scroll only vertically and show every action button whole."""
    require_browser()
    with serve(tmp_path) as tresor:
        sid, writer, shop = _seed(tresor)
        rectified = False
        with chromium_page() as page:
            for width, lang in ((390, "de"), (320, "en")):
                page.set_viewport_size({"width": width, "height": 800})
                page.context.clear_cookies()
                page.goto(f"{tresor.base}/privacy?lang={lang}")
                assert _check(page, f"sign-in {width}") >= 1
                seen = tresor.mail_files()
                page.locator("input[name=value]").fill(EMAIL)
                page.locator("form[action^='/privacy/sign-in'] button[type=submit]").click()
                code = tresor.wait_for_code(seen)
                page.locator("input[name=code]").wait_for()
                assert _check(page, f"code {width}") >= 1
                page.locator("input[name=code]").fill(code)
                page.keyboard.press("Enter")
                page.locator("#contact-data").wait_for()
                assert "Online-Shop" in page.locator("#access-log").inner_text()
                if not rectified:
                    page.locator("#r-name").fill("Maximiliane Neu")
                    page.locator("#rectify-heading ~ form button[type=submit]").click()
                    page.locator("#requests [data-request]").wait_for()
                counted = {}
                for path in SIGNED_IN_PAGES:
                    page.goto(f"{tresor.base}{path}?lang={lang}")
                    counted[path] = _check(page, f"{path} {width} {lang}")
                # The overview's withdraw, sign-out, rights buttons and the follow-up's cancel.
                assert counted["/privacy"] >= 7 and counted["/privacy/followups"] >= 2, counted
                rectified = True
            # Last, as they lock code sign-in and change the address (which also voids
            # the sign-in link, so that page comes first).
            for name, link in (
                ("sign-in link", lambda: _sign_in_link(tresor)),
                ("address change", lambda: _identity_link(tresor, sid, writer, shop)),
            ):
                path = link()
                for width, lang in ((390, "de"), (320, "en")):
                    page.set_viewport_size({"width": width, "height": 800})
                    page.context.clear_cookies()
                    page.goto(f"{tresor.base}{path}?lang={lang}")
                    assert _check(page, f"{name} {width} {lang}") >= 1, name
