"""AES-256-GCM with random 96-bit nonces. Private: use `fields` and `envelope` instead.

Blob layout: version byte 0x01 || nonce (12) || ciphertext+tag. The version byte leaves room
for another AEAD later without guessing formats.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto.errors import DecryptionError

_FORMAT = b"\x01"
_NONCE_LEN = 12
KEY_LEN = 32


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


def cipher(key: bytes) -> AESGCM:
    """Build the AEAD object once; callers that seal often keep it, as building it costs
    more than a short seal (docs/performance.md)."""
    if len(key) != KEY_LEN:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    return AESGCM(key)


def seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_LEN)
    return _FORMAT + nonce + aead.encrypt(nonce, plaintext, aad)


def seal_many(aead: AESGCM, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """`seal` of each (plaintext, aad) under one key, the random nonces drawn from the OS in
    one call for the whole batch instead of one system call each (a key rotation's batch)."""
    pool = os.urandom(_NONCE_LEN * len(items))
    out = []
    for k, (plaintext, aad) in enumerate(items):
        nonce = pool[k * _NONCE_LEN : (k + 1) * _NONCE_LEN]
        out.append(_FORMAT + nonce + aead.encrypt(nonce, plaintext, aad))
    return out


def open_(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + _NONCE_LEN + 16 or blob[:1] != _FORMAT:
        raise DecryptionError()
    nonce = blob[1 : 1 + _NONCE_LEN]
    try:
        return aead.decrypt(nonce, blob[1 + _NONCE_LEN :], aad)
    except InvalidTag as exc:
        raise DecryptionError() from exc
