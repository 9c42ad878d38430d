"""Helpers for the self-service tests: codes from the outbox, signed-in sessions, seeding."""

from __future__ import annotations

import email
import email.policy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

from tests.support.factories import WRITER, person
from vault.bases import consents
from vault.bases.consents import Evidence
from vault.context import VaultContext
from vault.rights import selfservice
from vault.subjects import store as subjects

TEST_IP = "203.0.113.9"
SMS_EVIDENCE = Evidence(
    touchpoint="shop.counter",
    method="paper_form",
    notice_version="v3",
    language="de",
    explicit=True,
)
_CODE_RE = re.compile(r"(\d{6})\s*$")


def mails(outbox: Path) -> list[email.message.EmailMessage]:
    """Every mail in the outbox, oldest first."""
    out = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        out.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
    return out


def code_mails(outbox: Path) -> list[email.message.EmailMessage]:
    return [m for m in mails(outbox) if "code" in str(m["Subject"]).lower()]


def code_of(message: email.message.Message) -> str:
    match = _CODE_RE.search(str(message["Subject"]))
    assert match, message["Subject"]
    return match.group(1)


async def latest_code(vault: VaultContext) -> str:
    """The code in the newest sign-in mail (after the background delivery finished)."""
    await selfservice.wait_for_mail()
    found = code_mails(vault.settings.outbox_dir)
    assert found, "no sign-in code was mailed"
    return code_of(found[-1])


async def seed_subject(
    vault: VaultContext, seed: int, **overrides: Any
) -> tuple[str, dict[str, Any]]:
    """A subject with every contact field, a contract basis (order.delivery) and an SMS
    offers consent given at the shop counter. Returns its id and contact data."""
    data = {**person(seed), **overrides}
    data = {k: v for k, v in data.items() if v is not None}
    sid = await subjects.create_subject(vault, WRITER, data)
    await consents.record_basis(vault, WRITER, sid, "order.delivery", reference="order 1")
    await consents.record_basis(vault, WRITER, sid, "offers.sms", evidence=SMS_EVIDENCE)
    return sid, data


async def sign_in(
    vault: VaultContext, address: str, kind: str = "email"
) -> selfservice.SessionToken:
    """A session through the real flow: code mailed to the outbox, then verified."""
    await selfservice.start_challenge(vault, kind=kind, value=address, client_ip=TEST_IP)
    code = await latest_code(vault)
    return await selfservice.verify_code(
        vault, kind=kind, value=address, code=code, client_ip=TEST_IP
    )


async def api_sign_in(http: httpx.AsyncClient, vault: VaultContext, address: str) -> dict[str, str]:
    """Sign in through the JSON API; returns the bearer header for /self/v1."""
    r = await http.post("/self/v1/session", json={"email": address})
    assert r.status_code == 202, r.text
    code = await latest_code(vault)
    r = await http.post("/self/v1/session/verify", json={"email": address, "code": code})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


class Page(HTMLParser):
    """The parts of a privacy page the tests check: forms, controls, labels, language."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.lang: str | None = None
        self.forms: list[dict[str, Any]] = []
        self.controls: list[dict[str, str]] = []
        self.labels_for: set[str] = set()
        self.buttons: list[dict[str, Any]] = []
        self._button: dict[str, Any] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "form":
            self.forms.append({**a, "fields": {}})
        elif tag in ("input", "textarea", "select"):
            self.controls.append({"tag": tag, **a})
            if self.forms and a.get("name"):
                self.forms[-1]["fields"].setdefault(a["name"], a.get("value", ""))
        elif tag == "label" and a.get("for"):
            self.labels_for.add(a["for"])
        elif tag == "button":
            self._button = {**a, "text": ""}
            self.buttons.append(self._button)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data.strip()

    def form(self, action_prefix: str) -> dict[str, Any]:
        """The first form whose action starts with `action_prefix`."""
        for form in self.forms:
            if form.get("action", "").startswith(action_prefix):
                return form
        actions = [f.get("action") for f in self.forms]
        raise AssertionError(f"no form posting to {action_prefix}: {actions}")

    def csrf(self) -> str:
        tokens = {f["fields"].get("_csrf_token") for f in self.forms}
        tokens.discard(None)
        assert len(tokens) == 1, tokens
        return tokens.pop()


async def page_sign_in(
    http: httpx.AsyncClient, vault: VaultContext, address: str, lang: str = "de"
) -> httpx.Response:
    """Sign in through the pages (address form, mailed code, code form); returns the
    answer to the code form (a 303 to /privacy that sets the session cookie)."""
    page = Page((await http.get(f"/privacy?lang={lang}")).text)
    r = await http.post(
        page.form("/privacy/sign-in")["action"],
        data={"_csrf_token": page.csrf(), "kind": "email", "value": address},
    )
    assert r.status_code == 200, r.text
    code_page = Page(r.text)
    code = await latest_code(vault)
    form = code_page.form("/privacy/verify")
    r = await http.post(form["action"], data={**form["fields"], "code": code})
    assert r.status_code == 303, r.text
    return r
