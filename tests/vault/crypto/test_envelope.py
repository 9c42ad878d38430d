"""DekManager: the bounded cache of unwrapped DEKs in front of the KEK provider."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import DekManager, LocalKeyring, open_field, seal_field


class CountingProvider:
    """A KEK provider that forwards to a real keyring and counts unwrap calls."""

    def __init__(self, inner: LocalKeyring) -> None:
        self.inner = inner
        self.unwraps: list[tuple[str, int]] = []

    def active_version(self) -> int:
        return self.inner.active_version()

    def versions(self) -> list[int]:
        return self.inner.versions()

    def wrap(self, subject_id: str, dek: bytes) -> tuple[int, bytes]:
        return self.inner.wrap(subject_id, dek)

    def unwrap(self, subject_id: str, version: int, blob: bytes) -> bytes:
        self.unwraps.append((subject_id, version))
        return self.inner.unwrap(subject_id, version, blob)


class Stored:
    """One subject's DEK as the database would hold it, plus a sealed field to prove the key."""

    def __init__(self, provider: CountingProvider) -> None:
        self.id = str(uuid.uuid4())
        raw = os.urandom(32)
        self.version, self.wrapped = provider.wrap(self.id, raw)
        self.sealed = seal_field(AESGCM(raw), self.id, "name", 1, f"name of {self.id}")

    def opens_with(self, deks: DekManager) -> bool:
        dek = deks.dek(self.id, self.version, self.wrapped)
        return open_field(dek, self.id, "name", 1, self.sealed) == f"name of {self.id}"


@pytest.fixture
def provider(tmp_path: Path) -> CountingProvider:
    return CountingProvider(LocalKeyring.create(tmp_path / "keyring.json"))


def test_repeated_use_unwraps_once(provider: CountingProvider) -> None:
    """A DEK is unwrapped by the provider once and then served from the cache."""
    deks = DekManager(provider, cache_size=10)
    s = Stored(provider)
    for _ in range(3):
        assert s.opens_with(deks)
    assert len(provider.unwraps) == 1


def test_new_dek_is_cached(provider: CountingProvider) -> None:
    """A freshly made DEK is usable from the cache without any unwrap call."""
    deks = DekManager(provider, cache_size=10)
    sid = str(uuid.uuid4())
    aead, version, wrapped = deks.new_dek(sid)
    assert deks.dek(sid, version, wrapped) is aead
    assert provider.unwraps == []


def test_cache_is_bounded_and_evicts_least_recently_used(provider: CountingProvider) -> None:
    """With room for two DEKs, a third evicts the one used least recently."""
    deks = DekManager(provider, cache_size=2)
    a, b, c = Stored(provider), Stored(provider), Stored(provider)
    assert a.opens_with(deks) and b.opens_with(deks)  # cache: a, b
    assert a.opens_with(deks)  # hit; a is now the most recent
    assert len(provider.unwraps) == 2
    assert c.opens_with(deks)  # evicts b
    assert len(provider.unwraps) == 3
    assert a.opens_with(deks) and c.opens_with(deks)
    assert len(provider.unwraps) == 3
    assert b.opens_with(deks)  # b was evicted: unwrapped again
    assert provider.unwraps[-1] == (b.id, b.version)
    assert len(provider.unwraps) == 4


def test_zero_cache_always_unwraps(provider: CountingProvider) -> None:
    """cache_size=0 disables caching: every use goes to the provider."""
    deks = DekManager(provider, cache_size=0)
    s = Stored(provider)
    assert s.opens_with(deks) and s.opens_with(deks)
    assert len(provider.unwraps) == 2


def test_rewrapped_dek_is_unwrapped_again(provider: CountingProvider) -> None:
    """The cache is keyed by the wrapped blob, so a re-wrapped DEK goes to the provider again."""
    deks = DekManager(provider, cache_size=10)
    s = Stored(provider)
    assert s.opens_with(deks)
    provider.inner.add_version()
    new_version, new_wrapped = deks.rewrap(s.id, s.version, s.wrapped)
    assert new_version == 2 and new_wrapped != s.wrapped
    provider.unwraps.clear()
    s.version, s.wrapped = new_version, new_wrapped
    assert s.opens_with(deks)
    assert provider.unwraps == [(s.id, 2)]


def test_forget_drops_only_that_subjects_entries(provider: CountingProvider) -> None:
    """forget(subject_id) empties the cache of that subject's DEKs and keeps the others."""
    deks = DekManager(provider, cache_size=10)
    a, b = Stored(provider), Stored(provider)
    assert a.opens_with(deks) and b.opens_with(deks)
    deks.forget(a.id)
    provider.unwraps.clear()
    assert a.opens_with(deks) and b.opens_with(deks)
    assert provider.unwraps == [(a.id, a.version)]


def test_batch_rewrap_gives_what_one_by_one_gives(provider: CountingProvider) -> None:
    """`rewrap_many` through the keyring file's batch re-wraps every DEK under the active
    version, each opening under its own subject only; a wrong subject fails the batch."""
    from vault.crypto import DecryptionError

    deks = DekManager(provider.inner, cache_size=0)
    stored = [Stored(provider) for _ in range(3)]
    provider.inner.add_version()
    fresh = deks.rewrap_many([(s.id, s.version, s.wrapped) for s in stored])
    assert [v for v, _ in fresh] == [2, 2, 2]
    for s, (version, wrapped) in zip(stored, fresh, strict=True):
        s.version, s.wrapped = version, wrapped
        assert s.opens_with(deks)
    with pytest.raises(DecryptionError):
        deks.rewrap_many([(stored[1].id, stored[0].version, stored[0].wrapped)])


def test_batch_rewrap_falls_back_to_one_call_per_dek(provider: CountingProvider) -> None:
    """A provider without a batch operation is asked once per DEK, in order."""
    deks = DekManager(provider, cache_size=0)
    stored = [Stored(provider) for _ in range(2)]
    provider.inner.add_version()
    fresh = deks.rewrap_many([(s.id, s.version, s.wrapped) for s in stored])
    assert provider.unwraps == [(stored[0].id, 1), (stored[1].id, 1)]
    assert [v for v, _ in fresh] == [2, 2]
