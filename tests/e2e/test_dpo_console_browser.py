"""The DPO console in a real browser (Playwright, Debian's Chromium) against `tresor serve`.

The DPO signs in with a dpo key, searches the audit trail for one customer, sees which
system read which fields for which purpose, and opens the proof of the consent that the
reads relied on. Runs headless with the system Chromium; no browser is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, POLICIES

TRESOR = str(Path(sys.executable).with_name("tresor"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IP = "203.0.113.99"
UA = "Mozilla/5.0 (Linux; Android 15) Mobile Safari/537.36"


def _need_browser() -> Any:
    """The Playwright sync API, or skip (fail under CI=true) saying how to enable the test."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        problem = "the Python package `playwright` is not installed (pip install -e '.[test]')"
    if problem is None and not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if problem:
        message = f"browser test needs a browser: {problem}; no browser is ever downloaded"
        if IN_CI:
            pytest.fail("CI=true requires the browser test to run: " + message, pytrace=False)
        pytest.skip(message)
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(base: str, method: str, path: str, key: str, body: object = None) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(tmp_path / "data"),
        "TRESOR_POLICIES": str(POLICIES),
        "TRESOR_RETENTION_INTERVAL": "0",
    }
    env.pop("TRESOR_DATABASE_URL", None)

    def cli(*args: str) -> str:
        out = subprocess.run([TRESOR, *args], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    cli("init")
    port = _free_port()
    proc = subprocess.Popen(
        [TRESOR, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("tresor serve did not come up: " + (proc.stdout.read() if proc.stdout else ""))
    try:
        yield base, cli
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _seed(base: str, cli: Any) -> dict[str, str]:
    """A customer with an SMS-marketing consent (with evidence) and reads by an SMS gateway."""
    key = lambda *a: cli("clients", "create", *a).strip().splitlines()[-1]  # noqa: E731
    writer = key("crm", "--role", "writer")
    gateway = key("sms-gateway", "--role", "lookup", "--purpose", "offers.sms")
    dpo = key("datenschutz", "--role", "dpo")
    status, body = _call(
        base, "POST", "/v1/subjects", writer,
        {"email": "jana.schulz@example.org", "phone": "+49 30 5550142", "name": "Jana Schulz"},
    )
    assert status == 201, body
    sid = body["subject_id"]
    status, body = _call(
        base, "POST", f"/v1/subjects/{sid}/consents", writer,
        {
            "purpose": "offers.sms",
            "evidence": {
                "touchpoint": "shop.counter.berlin", "method": "signature",
                "notice_version": "2026-10-sms", "language": "de", "explicit": True,
                "ip": IP, "user_agent": UA,
            },
        },
    )
    assert status == 201, body
    consent_id = body["consent_id"]
    for _ in range(3):
        status, body = _call(base, "POST", "/v1/lookup", gateway, {"purpose": "offers.sms", "subject_id": sid})
        assert status == 200, body
    status, body = _call(base, "POST", "/v1/lookup", gateway, {"purpose": "order.delivery", "subject_id": sid})
    assert status == 403 and body["reason"] == "purpose_not_allowed"
    return {"sid": sid, "consent_id": consent_id, "dpo": dpo}


def test_dpo_signs_in_finds_a_customers_reads_and_opens_the_consent_proof(served):
    """Sign in with a dpo key, search by subject id, see the reads, open the consent proof."""
    sync_playwright = _need_browser()
    started = time.monotonic()
    base, cli = served
    seeded = _seed(base, cli)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(locale="en-GB")
            page = context.new_page()
            page.set_default_timeout(10_000)

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
            page.get_by_label("Action (e.g. lookup or client:contact:lookup)").fill("lookup")
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
            assert "shop.counter.berlin" in evidence and "signature" in evidence
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
        finally:
            browser.close()
    assert time.monotonic() - started < 60
