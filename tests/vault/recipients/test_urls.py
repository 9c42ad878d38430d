"""Webhook URL validation (SSRF guard): https anywhere public, http only to loopback, no
credentials, private ranges only when allowed."""

from __future__ import annotations

import pytest

from vault.errors import InvalidInput
from vault.recipients.urls import address_allowed, validate_webhook_url


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/tresor",
        "https://93.184.216.34:8443/x",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]:9000/hook",
    ],
)
def test_accepted_urls(url: str):
    """Public https URLs and plain http to loopback are accepted as given."""
    assert validate_webhook_url(url, allow_private=False) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "https://"),
        ("hooks.example.com/x", "https://"),
        ("http://example.com/hook", "loopback"),
        ("https://user:pw@example.com/hook", "password"),
        ("https://token@example.com/hook", "password"),
        ("https://10.0.0.5/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[fd00::1]/hook", "private"),
        ("https://example.com:99999/x", "https://"),
        ("https://example.com/x#frag", "fragment"),
    ],
)
def test_refused_urls(url: str, why: str):
    """Other schemes, http beyond loopback, credentials in the URL and private, link-local
    (cloud metadata) or unique-local addresses are refused, naming the rule."""
    with pytest.raises(InvalidInput) as refused:
        validate_webhook_url(url, allow_private=False)
    assert why in str(refused.value.errors["url"])
    assert "pw" not in str(refused.value.errors)


def test_private_ranges_when_allowed():
    """With TRESOR_WEBHOOK_ALLOW_PRIVATE a private https address is accepted; http to it
    is still refused."""
    assert validate_webhook_url("https://10.0.0.5/hook", allow_private=True)
    with pytest.raises(InvalidInput):
        validate_webhook_url("http://10.0.0.5/hook", allow_private=True)


def test_resolved_addresses_follow_the_literal_rule():
    """What a host name resolves to at delivery is judged like a literal in a URL: private,
    link-local and unspecified addresses refused unless private ranges are allowed; public
    and loopback addresses allowed; anything that is not an address refused."""
    for inside in ("10.1.2.3", "192.168.0.7", "169.254.169.254", "fd00::1", "0.0.0.0"):  # noqa: S104 - refused, not bound
        assert not address_allowed(inside, allow_private=False)
        assert address_allowed(inside, allow_private=True)
    for outside in ("93.184.216.34", "2606:2800:220:1::1", "127.0.0.1", "::1"):
        assert address_allowed(outside, allow_private=False)
    assert not address_allowed("inside.example.com", allow_private=True)
