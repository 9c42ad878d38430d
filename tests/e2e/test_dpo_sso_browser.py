"""Single sign-on to the DPO console in a real browser against a real OpenID provider.

`oidc-provider` (Node.js, tests/support/oidc) runs on one port, `tresor serve` on another
with TRESOR_OIDC_* pointing at it; Chromium (Playwright) clicks "Sign in with <org>", signs
in at the provider, and lands in the console, signed in as the provider's user. A user
without the group `dpo` is refused; a signed-out session is refused afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium_page, free_port, require_browser
from tests.support.idp import oidc_provider, require_provider
from tests.support.server import Served, serve

CLIENT_ID = "tresor-console"
SECRET = "test-only-secret-of-the-console-client"


@pytest.fixture
def served_with_sso(tmp_path: Path) -> Iterator[Served]:
    require_browser()
    require_provider()
    idp_port, tresor_port = free_port(), free_port()
    base = f"http://127.0.0.1:{tresor_port}"
    with (
        oidc_provider(
            idp_port, CLIENT_ID, SECRET, f"{base}/dpo/sso/callback", tmp_path / "idp.log"
        ) as issuer,
        serve(
            tmp_path,
            port=tresor_port,
            TRESOR_PUBLIC_URL=base,
            TRESOR_RETENTION_INTERVAL="0",
            TRESOR_OIDC_ISSUER=issuer,
            TRESOR_OIDC_CLIENT_ID=CLIENT_ID,
            TRESOR_OIDC_CLIENT_SECRET=SECRET,
            TRESOR_OIDC_SCOPES="openid groups",
            TRESOR_OIDC_NAME="Example Org",
        ) as server,
    ):
        yield server


def _sign_in_at_provider(page, base: str, login: str) -> None:
    page.goto(base + "/dpo/signin?lang=en")
    page.get_by_role("link", name="Sign in with Example Org").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").click()
    page.get_by_role("button", name="Continue").click()


def test_a_dpo_signs_in_through_the_organisation_and_out_again(served_with_sso):
    """The provider's user with groups ["dpo"] reaches the audit page through single
    sign-on (PKCE, state, nonce, signed ID token); after signing out the session is gone."""
    base = served_with_sso.base
    with chromium_page(locale="en-GB") as page:
        _sign_in_at_provider(page, base, "dpo.user")
        page.wait_for_url(re.compile(re.escape(base) + r"/dpo/audit"))
        assert "sso:dpo.user" in page.locator("header").inner_text()
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/dpo/signin\?lang=en&done=signed_out"))
        page.goto(base + "/dpo/audit")
        assert "/dpo/signin" in page.url
    status, events = served_with_sso.call(
        "GET",
        "/v1/audit?action=dpo:session:start",
        served_with_sso.client("auditor", "dpo"),
    )
    assert status == 200, events
    assert any(e["actor_id"] == "sso:dpo.user" for e in events["items"])


def test_a_user_without_the_dpo_group_is_refused(served_with_sso):
    """A user the provider authenticates but who lacks the group gets a 403 page."""
    base = served_with_sso.base
    with chromium_page(locale="en-GB") as page:
        responses: list[int] = []
        page.on(
            "response",
            lambda r: responses.append(r.status) if "/dpo/sso/callback" in r.url else None,
        )
        _sign_in_at_provider(page, base, "someone.else")
        page.wait_for_url(re.compile(re.escape(base) + r"/dpo/sso/callback"))
        assert "does not have the role" in page.content()
        assert responses == [403]
        page.goto(base + "/dpo/audit")
        assert "/dpo/signin" in page.url
