"""Field sealing: round trip, and one opaque error for every way a ciphertext can fail."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import DecryptionError, open_field, seal_field

SID = str(uuid.uuid4())
OTHER_SID = str(uuid.uuid4())
VALUE = "Max Mustermann <max.muster@example.org>"
MESSAGE = "ciphertext could not be opened"
# Blob layout: format byte (1) || nonce (12) || ciphertext || tag (16).
NONCE = slice(1, 13)


def _flip(blob: bytes, index: int) -> bytes:
    out = bytearray(blob)
    out[index] ^= 0x01
    return bytes(out)


@pytest.fixture
def dek() -> AESGCM:
    return AESGCM(AESGCM.generate_key(bit_length=256))


@pytest.fixture
def blob(dek: AESGCM) -> bytes:
    return seal_field(dek, SID, "email", 1, VALUE)


def test_round_trip_and_layout(dek: AESGCM, blob: bytes) -> None:
    """A sealed field opens to the same text, and the blob hides it behind format byte and nonce."""
    assert open_field(dek, SID, "email", 1, blob) == VALUE
    assert blob[:1] == b"\x01"
    assert len(blob) == 1 + 12 + len(VALUE.encode()) + 16
    assert VALUE.encode() not in blob


def test_unicode_round_trip(dek: AESGCM) -> None:
    """Non-ASCII text (umlauts, ß) survives sealing unchanged."""
    text = "Jürgen Weiß, Straße des 17. Juni 135"
    assert open_field(dek, SID, "name", 1, seal_field(dek, SID, "name", 1, text)) == text


def test_nonces_are_fresh(dek: AESGCM) -> None:
    """Sealing the same value twice yields different nonces and ciphertexts."""
    a = seal_field(dek, SID, "email", 1, VALUE)
    b = seal_field(dek, SID, "email", 1, VALUE)
    assert a[NONCE] != b[NONCE]
    assert a != b


# Each case: how the ciphertext is presented wrongly -> the open attempt.
Opener = Callable[[AESGCM, bytes], str]
AUTH_FAILURES: dict[str, Opener] = {
    "tampered tag": lambda k, b: open_field(k, SID, "email", 1, _flip(b, -1)),
    "tampered ciphertext": lambda k, b: open_field(k, SID, "email", 1, _flip(b, 13)),
    "tampered nonce": lambda k, b: open_field(k, SID, "email", 1, _flip(b, 1)),
    "tag cut short": lambda k, b: open_field(k, SID, "email", 1, b[:-1]),
    "wrong key": lambda k, b: open_field(AESGCM(os.urandom(32)), SID, "email", 1, b),
    "other subject id": lambda k, b: open_field(k, OTHER_SID, "email", 1, b),
    "other field name": lambda k, b: open_field(k, SID, "phone", 1, b),
    "other dek version": lambda k, b: open_field(k, SID, "email", 2, b),
}
FORMAT_FAILURES: dict[str, Opener] = {
    "truncated below minimum": lambda k, b: open_field(k, SID, "email", 1, b[:28]),
    "empty blob": lambda k, b: open_field(k, SID, "email", 1, b""),
    "wrong format byte": lambda k, b: open_field(k, SID, "email", 1, b"\x02" + b[1:]),
}


@pytest.mark.parametrize("case", sorted(AUTH_FAILURES))
def test_authentication_failures_are_opaque(case: str, dek: AESGCM, blob: bytes) -> None:
    """A tampered, mis-keyed or moved ciphertext raises the one DecryptionError, from InvalidTag."""
    with pytest.raises(DecryptionError) as info:
        AUTH_FAILURES[case](dek, blob)
    assert type(info.value) is DecryptionError
    assert str(info.value) == MESSAGE
    assert isinstance(info.value.__cause__, InvalidTag)


@pytest.mark.parametrize("case", sorted(FORMAT_FAILURES))
def test_malformed_blobs_are_opaque(case: str, dek: AESGCM, blob: bytes) -> None:
    """A blob too short or in an unknown format raises the same DecryptionError and message."""
    with pytest.raises(DecryptionError) as info:
        FORMAT_FAILURES[case](dek, blob)
    assert type(info.value) is DecryptionError
    assert str(info.value) == MESSAGE


def test_error_message_never_carries_the_value_or_context(dek: AESGCM, blob: bytes) -> None:
    """The error text names neither the plaintext, the subject nor the field."""
    with pytest.raises(DecryptionError) as info:
        open_field(dek, OTHER_SID, "phone", 1, blob)
    text = f"{info.value!s} {info.value!r}"
    for secret in (VALUE, SID, OTHER_SID, "phone", "email"):
        assert secret not in text


def test_a_revision_opens_only_at_that_revision(dek: AESGCM) -> None:
    """A field sealed at revision 3 opens at 3 only: not at 2, 4 or without a revision (0),
    so an older ciphertext put back under a newer row revision fails."""
    blob = seal_field(dek, SID, "email", 1, VALUE, revision=3)
    assert open_field(dek, SID, "email", 1, blob, revision=3) == VALUE
    for other in (0, 2, 4):
        with pytest.raises(DecryptionError, match=f"^{MESSAGE}$"):
            open_field(dek, SID, "email", 1, blob, revision=other)


def test_revision_zero_is_the_format_without_a_revision(dek: AESGCM, blob: bytes) -> None:
    """Ciphertexts sealed before revisions existed (revision 0) still open at 0 and at no
    other revision; a negative revision is refused outright."""
    assert open_field(dek, SID, "email", 1, blob, revision=0) == VALUE
    with pytest.raises(DecryptionError):
        open_field(dek, SID, "email", 1, blob, revision=1)
    with pytest.raises(ValueError):
        seal_field(dek, SID, "email", 1, VALUE, revision=-1)
