"""The keyed MAC every use goes through: HMAC-SHA256 in hex, verified in constant time."""

from __future__ import annotations

import pytest

from vault.crypto import Mac, same_digest

KEY = bytes(range(32))


def test_digest_is_hmac_sha256_in_lower_case_hex():
    """RFC 4231 test case 6 (a 131-byte key): the published HMAC-SHA-256, as 64 lower-case
    hex characters."""
    mac = Mac(b"\xaa" * 131)
    digest = mac.digest(b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert digest == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_verify_accepts_the_mac_and_nothing_else():
    """The right MAC verifies; another message, another key, a changed or truncated digest
    or a non-hex string does not."""
    mac = Mac(KEY)
    good = mac.digest(b"payload")
    assert mac.verify(b"payload", good)
    assert not mac.verify(b"payloae", good)
    assert not Mac(bytes(range(1, 33))).verify(b"payload", good)
    assert not mac.verify(b"payload", good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert not mac.verify(b"payload", good[:32])
    assert not mac.verify(b"payload", "ä" * 64)


def test_short_keys_are_refused_and_the_key_never_shows():
    """A key shorter than 32 bytes is refused; the repr names no key material."""
    with pytest.raises(ValueError):
        Mac(b"short")
    assert KEY.hex() not in repr(Mac(KEY)) and str(KEY) not in repr(Mac(KEY))


def test_same_digest_compares_exactly():
    """Equal digests are equal; any difference, including length or non-ASCII, is not."""
    assert same_digest("ab" * 32, "ab" * 32)
    assert not same_digest("ab" * 32, "ab" * 31 + "ac")
    assert not same_digest("ab" * 32, "ab" * 31)
    assert not same_digest("ab", "äb")


def test_hexdigester_gives_the_same_digest_for_every_message():
    """The reused keyed state gives `digest` of each message, and one message does not leak
    into the next (each call starts from the key alone)."""
    mac = Mac(KEY)
    digest = mac.hexdigester()
    for message in (b"", b"payload", b"x" * 1000, b"payload"):
        assert digest(message) == mac.digest(message)
    assert Mac(bytes(range(1, 33))).hexdigester()(b"payload") != digest(b"payload")


def test_same_digest_refuses_a_non_ascii_string_without_raising():
    """A tampered stored digest with non-ASCII characters is unequal, not an error."""
    good = Mac(KEY).digest(b"payload")
    assert same_digest(good, good)
    assert not same_digest(good, "ä" * 64)
    assert not same_digest("ä" * 64, good)
