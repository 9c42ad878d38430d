"""The DPO's recipient actions in a real browser (Playwright, Debian's Chromium) against
`tresor serve`: pause and resume a recipient, replay its notices from a time, and rotate
its signing secret, which is shown once; each form carries the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium_page, require_browser
from tests.support.server import Served, serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, TRESOR_RETENTION_INTERVAL="0") as server:
        yield server


def test_dpo_pauses_replays_and_rotates_a_recipient(served):
    """Sign in, pause the mailer (the page says so and offers Resume), resume it, replay
    its notices since a date, rotate its secret (a whsec_ value shown once, gone on the
    next visit); the trail shows each action by the DPO."""
    require_browser()
    served.client("mailer", "lookup", "order.delivery")
    dpo = served.client("datenschutz", "dpo")
    first = served.cli("recipients", "create", "mailer", "--target", "http://127.0.0.1:9/closed")
    first_secret = first.strip().splitlines()[-1]
    with chromium_page(locale="en-GB") as page:
        page.goto(served.base + "/dpo/signin?lang=en")
        page.get_by_label("API key (dpo)").fill(dpo)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/dpo/audit.*"))
        page.goto(served.base + "/dpo/recipients?lang=en")
        row = page.locator('tr[data-recipient="mailer"]')
        assert "active" in row.inner_text()

        row.get_by_role("button", name="Pause").click()
        page.wait_for_url(re.compile(r".*done=paused.*"))
        assert "The recipient is paused" in page.get_by_role("status").inner_text()
        row = page.locator('tr[data-recipient="mailer"]')
        assert "paused" in row.inner_text()
        row.get_by_role("button", name="Resume").click()
        page.wait_for_url(re.compile(r".*done=resumed.*"))
        assert "active" in page.locator('tr[data-recipient="mailer"]').inner_text()

        row = page.locator('tr[data-recipient="mailer"]')
        row.get_by_label("since (UTC)").fill("2026-01-01T00:00")
        row.get_by_role("button", name="Replay").click()
        page.wait_for_url(re.compile(r".*done=replayed.*"))
        assert "0 notices are sent again" in page.get_by_role("status").inner_text()

        page.locator('tr[data-recipient="mailer"]').get_by_role(
            "button", name="Rotate secret"
        ).click()
        secret = page.locator("#secret-value").inner_text()
        assert secret.startswith("whsec_") and secret != first_secret
        assert "mailer" in page.get_by_role("alert").inner_text()
        assert secret not in page.url
        page.goto(served.base + "/dpo/recipients?lang=en")
        assert secret not in page.content()
    trail = served.cli("audit", "export", "--since", "2000-01-01T00:00")
    for action in ("pause", "resume", "replay", "rotate_signing_key"):
        assert f"admin:recipient:{action}" in trail
