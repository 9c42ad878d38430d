"""The client's address and scheme: the peer, or behind a trusted proxy the right-most
untrusted forwarded hop; forwarded headers from anyone else are ignored."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from api.client_address import client_address, client_scheme, parse_forwarded
from tests.support.factories import api
from tests.support.self_service import code_mails, seed_subject
from vault.rights import selfservice
from vault.setting_values import parse_networks
from vault.settings import Settings

TRUSTED = ("10.0.0.0/8", "2001:db8:ffff::/48")


def scope(peer: str | None, headers: dict[str, str], trusted: tuple[str, ...] = TRUSTED) -> Any:
    settings = Settings(trusted_proxies=trusted)
    app = SimpleNamespace(state=SimpleNamespace(vault=SimpleNamespace(settings=settings)))
    return {
        "type": "http",
        "scheme": "http",
        "client": (peer, 5000) if peer else None,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "litestar_app": app,
    }


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # No trusted proxy configured or an untrusted peer: the headers are ignored.
        ("198.51.100.1", {"X-Forwarded-For": "203.0.113.9"}, "198.51.100.1"),
        ("198.51.100.1", {"Forwarded": "for=203.0.113.9"}, "198.51.100.1"),
        # A trusted peer: the right-most hop that is not a trusted proxy.
        ("10.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"),
        ("10.0.0.1", {"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.0.0.7"}, "203.0.113.9"),
        ("10.0.0.1", {"X-Forwarded-For": "203.0.113.9:1234"}, "203.0.113.9"),
        ("10.0.0.1", {"Forwarded": 'for="[2001:db8::1]:80", for=10.2.2.2'}, "2001:db8::1"),
        ("10.0.0.1", {"Forwarded": "For=192.0.2.60;proto=https;by=203.0.113.43"}, "192.0.2.60"),
        # Forwarded wins over X-Forwarded-For when both are sent.
        ("10.0.0.1", {"Forwarded": "for=192.0.2.1", "X-Forwarded-For": "192.0.2.2"}, "192.0.2.1"),
        # Only trusted hops: the left-most of them; a garbled hop stops the walk.
        ("10.0.0.1", {"X-Forwarded-For": "10.9.9.9, 10.0.0.2"}, "10.9.9.9"),
        ("10.0.0.1", {"X-Forwarded-For": "203.0.113.9, garbage"}, "10.0.0.1"),
        ("10.0.0.1", {"Forwarded": "for=_hidden"}, "10.0.0.1"),
        ("10.0.0.1", {}, "10.0.0.1"),
        ("::ffff:10.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"),
        (None, {"X-Forwarded-For": "203.0.113.9"}, "unknown"),
    ],
)
def test_client_address(peer, headers, expected):
    """The address is the peer's unless a trusted proxy forwarded it, walking from the right."""
    assert client_address(scope(peer, headers)) == expected


def test_no_trusted_proxies_ignores_every_forwarded_header():
    """With the default (empty) setting even a private peer's headers are ignored."""
    s = scope("10.0.0.1", {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, ())
    assert (client_address(s), client_scheme(s)) == ("10.0.0.1", "http")


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("10.0.0.1", {"X-Forwarded-Proto": "https"}, "https"),
        ("10.0.0.1", {"Forwarded": "for=192.0.2.1;proto=https"}, "https"),
        ("10.0.0.1", {"X-Forwarded-Proto": "gopher"}, "http"),
        ("198.51.100.1", {"X-Forwarded-Proto": "https"}, "http"),
    ],
)
def test_client_scheme(peer, headers, expected):
    """X-Forwarded-Proto / Forwarded proto count only from a trusted peer, and only http(s)."""
    assert client_scheme(scope(peer, headers)) == expected


def test_forwarded_parser_keeps_quoted_commas_and_lower_cases_names():
    """RFC 7239 elements are split on commas outside quotes; parameter names are
    case-insensitive."""
    assert parse_forwarded('for="[::1]:1,2";Proto=https, for=192.0.2.1') == [
        {"for": "::1", "proto": "https"},
        {"for": "192.0.2.1"},
    ]


def test_bad_trusted_proxy_entry_is_a_startup_error_naming_it():
    """A typo in TRESOR_TRUSTED_PROXIES stops the start with the bad entry in the message."""
    assert parse_networks(" 10.0.0.0/8 ,192.0.2.7, ::1", "X") == (
        "10.0.0.0/8",
        "192.0.2.7/32",
        "::1/128",
    )
    for bad in ("10.0.0.0/33", "proxy.local", "10.0.0.1/8"):
        with pytest.raises(ValueError, match="TRESOR_TRUSTED_PROXIES") as err:
            Settings.from_env({"TRESOR_TRUSTED_PROXIES": f"10.0.0.0/8,{bad}"})
        assert repr(bad) in str(err.value)


async def _request_codes(vault, emails: list[str], trusted: tuple[str, ...]) -> list[int]:
    import httpx

    from api.app import create_app

    vault.settings = replace(vault.settings, trusted_proxies=trusted)
    app = create_app(vault=vault, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 443))
    codes = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t.local") as http:
            for n, address in enumerate(emails):
                r = await http.post(
                    "/self/v1/session",
                    json={"email": address},
                    headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
                )
                codes.append(r.status_code)
    finally:
        for hook in app.on_shutdown:
            await hook(app)
    await selfservice.wait_for_mail()
    return codes


async def test_40_customers_behind_one_trusted_proxy_each_get_their_codes(vault):
    """Forty customers reaching the privacy centre through one trusted load balancer each
    get a code: the per-address code limit (20 an hour) counts each forwarded address."""
    emails = [(await seed_subject(vault, 500 + n))[1]["email"] for n in range(40)]
    codes = await _request_codes(vault, emails, ("10.0.0.0/8",))
    assert codes == [202] * 40
    assert len(code_mails(vault.settings.outbox_dir)) == 40


async def test_without_trusting_the_proxy_they_share_one_limit(vault):
    """The same forty requests from an untrusted balancer share its address: after 20 codes
    the rest get 429 (so the test above measures the trusted-proxy setting)."""
    emails = [f"kunde.{n}@example.org" for n in range(25)]
    codes = await _request_codes(vault, emails, ())
    assert codes == [202] * 20 + [429] * 5


async def test_the_app_reads_the_forwarded_address_only_behind_a_trusted_proxy(vault):
    """Through the app's own client (peer 127.0.0.1, not trusted) spoofed headers change
    nothing: the code limit still counts the peer."""
    vault.settings = replace(vault.settings, otp_per_ip_hour=2)
    async with api(vault) as http:
        codes = [
            (
                await http.post(
                    "/self/v1/session",
                    json={"email": f"k{n}@example.org"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=192.0.2.{n}"},
                )
            ).status_code
            for n in range(3)
        ]
    await selfservice.wait_for_mail()
    assert codes == [202, 202, 429]


def test_nothing_else_in_api_reads_the_peer_address():
    """Only api/client_address.py reads the ASGI peer: a limit or evidence that read it
    directly would count every customer behind a load balancer as one."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "api"
    pattern = re.compile(
        r"(request|connection)\.client\b(?!_)|\.client\.host"
        r"|scope\[[\"']client[\"']\]|scope\.get\([\"']client[\"']"
    )
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        if path.name != "client_address.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
    assert pattern.search('ip = request.client.host if request.client else "x"')
