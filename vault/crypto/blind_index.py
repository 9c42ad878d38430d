"""Blind indexes: find a subject by e-mail, phone or external reference without storing it.

HMAC-SHA256 under an index key that is separate from every encryption key, over the
normalised value, with the kind as a domain separator so that equal strings of different
kinds never collide. The index key is a random secret of the keyring of its own, not
derived from the server secret: deriving it would change every stored index (a re-index of
every subject) for no gain, since it serves this one MAC only (`vault.crypto.derive`).
"""

from __future__ import annotations

from vault.crypto.errors import IndexMismatch
from vault.crypto.mac import Mac


class BlindIndexer:
    def __init__(self, index_key: bytes) -> None:
        if len(index_key) < 32:
            raise ValueError("blind-index key must be at least 32 bytes")
        self._mac = Mac(index_key)

    def digest(self, kind: str, normalised_value: str) -> str:
        """Hex digest for a normalised value of the given kind (email, phone, external_ref)."""
        return self._mac.digest(f"{kind}\x00{normalised_value}".encode())

    def verify(self, kind: str, normalised_value: str, digest: str) -> None:
        """Raise `IndexMismatch` unless `digest` is the index of this value: a row found by
        a digest must hold the value it indexes (an entry moved onto another subject's row
        fails here). Constant time, like every comparison of secrets."""
        if not self._mac.verify(f"{kind}\x00{normalised_value}".encode(), digest):
            raise IndexMismatch()
