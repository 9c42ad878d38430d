"""The DPO console's session token: signed under the key derived for it alone."""

from __future__ import annotations

from datetime import timedelta

from api.dpo import session as dpo_session
from vault.admin.clients import ClientInfo, Role
from vault.crypto import KeyLabel, Mac


def _dpo(vault) -> ClientInfo:
    return ClientInfo("c-1", "datenschutz", Role.DPO, frozenset(), vault.clock.now(), None)


def _resigned(token: str, mac: Mac) -> str:
    _, payload, _ = token.split(".")
    return f"v1.{payload}.{mac.digest(payload.encode())}"


async def test_a_session_token_is_read_back_until_it_expires(vault, clock):
    """A token the console issued carries its client and expiry, and is refused once the
    session has expired."""
    token, issued = dpo_session.issue_session(vault, _dpo(vault))
    assert dpo_session.read_session(vault, token) == issued
    clock.advance(dpo_session.SESSION_TTL + timedelta(seconds=1))
    assert dpo_session.read_session(vault, token) is None


async def test_only_the_session_key_signs_a_session(vault):
    """The payload re-signed under the raw server secret (the key before the derivation)
    or under another use's derived key is refused, as is a changed payload."""
    token, _ = dpo_session.issue_session(vault, _dpo(vault))
    assert dpo_session.read_session(vault, _resigned(token, vault.keys.legacy_mac())) is None
    for label in (KeyLabel.DPO_CSRF, KeyLabel.API_KEY_HASH):
        assert dpo_session.read_session(vault, _resigned(token, vault.keys.mac(label))) is None
    assert dpo_session.read_session(vault, _resigned(token, vault.keys.mac(KeyLabel.DPO_SESSION)))
    _, payload, mac = token.split(".")
    changed = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    assert dpo_session.read_session(vault, f"v1.{changed}.{mac}") is None
