"""Keyed MACs: HMAC-SHA256 under one key per use, compared in constant time.

Every keyed digest Tresor stores or checks (API-key hashes, one-time codes, sign-in and
notice links, session cookies, the audit chain, blind indexes) goes through `Mac`, so the
algorithm, the encoding (lower-case hex) and the comparison are chosen once. A `Mac` is
built from a key made for its use: `DerivedKeys.mac(label)` for the uses of the server
secret, or an independent random secret (`index_key`, `audit_key`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

#: Shorter keys than the digest weaken HMAC-SHA256; every key Tresor makes has 32 bytes.
MIN_KEY_BYTES = 32


class Mac:
    """HMAC-SHA256 under one key; `digest` gives 64 hex characters."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a MAC key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Mac(<key>)"  # never the key, not even in a traceback

    def digest(self, message: bytes) -> str:
        """The MAC of `message` as lower-case hex (the one-shot C path of `hmac`)."""
        return hmac.digest(self._key, message, "sha256").hex()

    def tag(self, message: bytes) -> bytes:
        """The MAC of `message` as raw bytes, for formats that encode it themselves
        (Standard Webhooks signatures are base64)."""
        return hmac.digest(self._key, message, "sha256")

    def hexdigester(self) -> Callable[[bytes], str]:
        """A function giving `digest(message)`, for loops over millions of messages (the
        audit chain's verification): the keyed state is prepared once and copied per
        message, which costs less than the one-shot `digest`, which pads and hashes the key
        again for every message."""
        copy = hmac.new(self._key, digestmod="sha256").copy

        def digest(message: bytes) -> str:
            state = copy()
            state.update(message)
            return state.hexdigest()

        return digest

    def verify(self, message: bytes, digest: str) -> bool:
        """Whether `digest` is the MAC of `message`, compared in constant time."""
        return same_digest(self.digest(message), digest)


def same_digest(a: str, b: str) -> bool:
    """Constant-time equality of two digests (hex strings), for digests computed elsewhere:
    a stored hash against a fresh one, or two blind indexes."""
    try:  # hex digests are ASCII: compared as they are, without two encodings
        return hmac.compare_digest(a, b)
    except TypeError:  # a non-ASCII string (a tampered column) equals no hex digest
        return hmac.compare_digest(a.encode(), b.encode())


def keyed_state(key: bytes) -> Any:
    """An HMAC-SHA256 state keyed once, to be copied per message (the audit verifier's inner
    loop). The OpenSSL object under `hmac.HMAC` where there is one: its `copy`, `update` and
    `hexdigest` are C calls, where the wrapper's add a Python frame each (a fifth of the
    loop)."""
    state = hmac.new(key, digestmod="sha256")
    return getattr(state, "_hmac", None) or state


def hex_mac(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` as ASCII hex bytes, as the audit chain stores its MACs."""
    return hmac.new(key, message, "sha256").hexdigest().encode()


def same_mac(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two MACs as bytes."""
    return hmac.compare_digest(a, b)
