"""Keyed digests of the self-service secrets and identifiers.

Codes, links, sessions and rate-limited addresses and client IPs are stored only as HMACs,
each under a key derived for it alone, so a database copy yields none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vault.crypto import KeyLabel
from vault.errors import InvalidInput
from vault.subjects.store import identifier_digest

if TYPE_CHECKING:
    from vault.context import VaultContext


KINDS = ("email", "phone")


# Codes, links, sessions and rate-limited addresses are hashed under a key derived for each
# alone. All of them live minutes (a client address counts for an hour), so there is no
# legacy key: a code, link or session from just before an upgrade fails and the customer
# asks again; the per-address request count starts afresh.


def keyed_digest(ctx: VaultContext, label: KeyLabel, value: str) -> str:
    """HMAC-SHA256 of `value` under `label`'s key; 64 hex characters."""
    return ctx.keys.mac(label).digest(value.encode())


def hash_code(ctx: VaultContext, challenge_id: str, code: str) -> str:
    """A one-time code's hash, bound to its challenge."""
    return keyed_digest(ctx, KeyLabel.SELF_SERVICE_CODE, f"{challenge_id}\x00{code}")


def hash_link(ctx: VaultContext, token: str) -> str:
    """A sign-in link's hash."""
    return keyed_digest(ctx, KeyLabel.SELF_SERVICE_LINK, token)


def hash_session(ctx: VaultContext, token: str) -> str:
    """A session token's hash, as `web_sessions` stores it."""
    return keyed_digest(ctx, KeyLabel.SELF_SERVICE_SESSION, token)


def address_digest(ctx: VaultContext, kind: str, value: str) -> str:
    """The blind index of an address (`kind` e-mail or phone); `InvalidInput` otherwise."""
    if kind not in KINDS:
        raise InvalidInput("unknown identifier", {"kind": "use email or phone"})
    return identifier_digest(ctx, kind, value)  # raises InvalidInput for a malformed value
