"""Blind indexes: equal identifiers typed differently match; nothing else does."""

from __future__ import annotations

import os

import pytest

from vault.crypto import BlindIndexer
from vault.subjects.contact import normalise_email, normalise_phone

KEY = bytes(range(32))


@pytest.fixture
def indexer() -> BlindIndexer:
    return BlindIndexer(KEY)


def test_email_spellings_share_a_digest(indexer: BlindIndexer) -> None:
    """An e-mail address with spaces and capitals indexes like its trimmed lower-case form."""
    digests = {
        indexer.digest("email", normalise_email(v))
        for v in (" Max.Muster@Example.ORG ", "max.muster@example.org", "MAX.MUSTER@EXAMPLE.ORG")
    }
    assert len(digests) == 1
    assert indexer.digest("email", normalise_email("moritz.muster@example.org")) not in digests


def test_phone_spellings_share_a_digest(indexer: BlindIndexer) -> None:
    """National, spaced international and E.164 forms of one number index alike."""
    digests = {
        indexer.digest("phone", normalise_phone(v))
        for v in ("030 1234567", "+49 30 1234567", "+49301234567", "(030) 123 45 67")
    }
    assert len(digests) == 1
    assert indexer.digest("phone", normalise_phone("030 1234568")) not in digests


def test_kinds_are_domain_separated(indexer: BlindIndexer) -> None:
    """The same string indexed as different kinds gives different digests."""
    value = "K-12345678"
    digests = {indexer.digest(kind, value) for kind in ("email", "phone", "external_ref")}
    assert len(digests) == 3


def test_digest_is_stable_hex_and_hides_the_value(indexer: BlindIndexer) -> None:
    """A digest is deterministic 64-char hex (HMAC-SHA256) and does not contain the value."""
    d = indexer.digest("email", "max.muster@example.org")
    assert d == BlindIndexer(KEY).digest("email", "max.muster@example.org")
    assert len(d) == 64 and int(d, 16) >= 0
    assert "max" not in d


def test_digest_depends_on_the_key() -> None:
    """Another index key gives another digest for the same value."""
    a = BlindIndexer(KEY).digest("email", "max.muster@example.org")
    b = BlindIndexer(os.urandom(32)).digest("email", "max.muster@example.org")
    assert a != b


@pytest.mark.parametrize("length", [0, 16, 31])
def test_short_index_key_rejected(length: int) -> None:
    """An index key shorter than 32 bytes is refused."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        BlindIndexer(b"k" * length)


def test_longer_index_key_accepted() -> None:
    """A 64-byte index key is accepted."""
    assert len(BlindIndexer(os.urandom(64)).digest("phone", "+49301234567")) == 64


def test_verify_accepts_the_value_an_index_belongs_to_and_refuses_another(
    indexer: BlindIndexer,
) -> None:
    """`verify` passes for the value a digest was made from and raises the opaque
    IndexMismatch for any other value or kind, naming neither."""
    from vault.crypto import IndexMismatch, IntegrityCheckFailed

    digest = indexer.digest("email", "max.muster@example.org")
    indexer.verify("email", "max.muster@example.org", digest)
    for kind, value in (
        ("email", "moritz.muster@example.org"),
        ("external_ref", "max.muster@example.org"),
    ):
        with pytest.raises(IndexMismatch) as info:
            indexer.verify(kind, value, digest)
        assert isinstance(info.value, IntegrityCheckFailed)
        assert "muster" not in str(info.value)
