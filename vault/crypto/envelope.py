"""Envelope encryption: per-subject data-encryption keys wrapped by a versioned KEK.

Unwrapping costs a provider call (an HSM round trip in production), so unwrapped DEKs sit
in a bounded LRU cache keyed by the wrapped blob itself: a re-wrapped or destroyed DEK has
another (or no) blob, so the cache can never serve a key the database no longer holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import _aead
from vault.crypto.errors import IntegrityCheckFailed
from vault.crypto.keyring import KekProvider


def retained_key_id(row_id: str) -> str:
    """The identity a retained row's own key is wrapped under (the KEK binds it): not a
    subject id, so it can never unwrap as a subject's DEK or the other way round. Used by
    the erasure that creates the key, the sweep that shreds it and the KEK rotation."""
    return f"retained:{row_id}"


class DekManager:
    def __init__(self, provider: KekProvider, cache_size: int = 10_000) -> None:
        self._provider = provider
        self._cache: OrderedDict[tuple[str, int, bytes], AESGCM] = OrderedDict()
        self._cache_size = max(0, cache_size)
        self._lock = threading.Lock()

    @property
    def provider(self) -> KekProvider:
        return self._provider

    @property
    def blocking(self) -> bool:
        """Whether an unwrap blocks its thread for long (a PKCS#11 token: `blocking` on the
        provider), so async callers run unwraps in a worker thread (`unwrap_many`). The
        local keyring's AES key unwrap takes microseconds and runs inline."""
        return bool(getattr(self._provider, "blocking", False))

    def unwrap_many(
        self, keys: list[tuple[str, int, bytes]], *, remember: bool = True
    ) -> list[AESGCM | None]:
        """`dek` for each (subject id, KEK version, wrapped blob), None for a blob that
        does not unwrap (`DecryptionError`): one call for a worker thread
        (`asyncio.to_thread`) to unwrap a whole chunk's keys off the event loop."""
        out: list[AESGCM | None] = []
        for subject_id, version, wrapped in keys:
            try:
                out.append(self.dek(subject_id, version, wrapped, remember=remember))
            except IntegrityCheckFailed:
                out.append(None)
        return out

    def new_dek(self, subject_id: str) -> tuple[AESGCM, int, bytes]:
        """A fresh DEK for a subject: (cipher, kek_version, wrapped blob)."""
        raw = _aead.new_key()
        version, wrapped = self._provider.wrap(subject_id, raw)
        aead = _aead.cipher(raw)
        self._remember((subject_id, version, wrapped), aead)
        return aead, version, wrapped

    def dek(
        self, subject_id: str, kek_version: int, wrapped: bytes, *, remember: bool = True
    ) -> AESGCM:
        """The cipher for a stored wrapped DEK; raises `DecryptionError` if it won't unwrap.

        A cached key is used either way; `remember=False` only keeps a newly unwrapped one
        out of the cache."""
        key = (subject_id, kek_version, bytes(wrapped))
        with self._lock:
            aead = self._cache.get(key)
            if aead is not None:
                self._cache.move_to_end(key)
                return aead
        aead = _aead.cipher(self._provider.unwrap(subject_id, kek_version, bytes(wrapped)))
        if remember:
            self._remember(key, aead)
        return aead

    def rewrap(self, subject_id: str, kek_version: int, wrapped: bytes) -> tuple[int, bytes]:
        """Unwrap under the old KEK version and wrap again under the active one."""
        raw = self._provider.unwrap(subject_id, kek_version, bytes(wrapped))
        return self._provider.wrap(subject_id, raw)

    def rewrap_many(self, items: Sequence[tuple[str, int, bytes]]) -> list[tuple[int, bytes]]:
        """`rewrap` of a whole batch: through the provider's own batch operation where it
        has one (the keyring file checks itself once, a token opens one session hold),
        else one by one."""
        batch = getattr(self._provider, "rewrap_many", None)
        if batch is not None:
            return list(batch(items))
        return [self.rewrap(subject_id, version, blob) for subject_id, version, blob in items]

    def forget(self, subject_id: str) -> None:
        """Drop every cached DEK of a subject (erasure)."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == subject_id]:
                del self._cache[key]

    def _remember(self, key: tuple[str, int, bytes], aead: AESGCM) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            self._cache[key] = aead
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
