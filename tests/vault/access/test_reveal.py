"""Key unwraps and the event loop: a blocking KEK provider (PKCS#11) unwraps in a worker
thread, the local keyring inline; the answer is the same either way."""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.support.factories import WRITER, person
from vault.access import bulk
from vault.access.lookup import lookup
from vault.audit.events import Actor
from vault.bases.consents import record_basis
from vault.crypto import DekManager
from vault.crypto.pkcs11_provider import Pkcs11KekProvider
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-reveal")


class _Recording:
    """A KEK provider that delegates to the real one and records the unwrapping thread."""

    def __init__(self, inner: Any, *, blocking: bool) -> None:
        self.inner, self.blocking = inner, blocking
        self.threads: list[threading.Thread] = []

    def unwrap(self, subject_id: str, version: int, blob: bytes) -> bytes:
        self.threads.append(threading.current_thread())
        return self.inner.unwrap(subject_id, version, blob)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _read(vault, *, blocking: bool) -> _Recording:
    """Look a fresh subject up by e-mail through a recording provider (set only after the
    subject was written); returns the provider."""
    p = person(901)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 901")
    provider = _Recording(vault.kek, blocking=blocking)
    vault.deks = DekManager(provider, 0)  # no cache: the lookup must unwrap
    out = await lookup(
        vault, SHOP, frozenset({"order.delivery"}), purpose_id="order.delivery",
        identifier_kind="email", identifier=p["email"],
    )  # fmt: skip
    assert out.fields["name"] == p["name"]
    return provider


async def test_a_blocking_provider_unwraps_off_the_event_loop(vault):
    """With a provider marked blocking (as the PKCS#11 one is), the lookup's unwrap runs in a
    worker thread, not on the event loop's."""
    provider = await _read(vault, blocking=True)
    assert provider.threads and all(t is not threading.main_thread() for t in provider.threads)


async def test_the_local_keyring_unwraps_inline(vault):
    """The local keyring's unwrap (microseconds) stays on the event loop's thread."""
    provider = await _read(vault, blocking=False)
    assert provider.threads and all(t is threading.main_thread() for t in provider.threads)


async def test_a_batch_unwraps_its_chunk_off_the_event_loop(vault):
    """Bulk resolution with a blocking provider unwraps the chunk's keys in a worker thread
    and answers every line as with the local keyring."""
    subjects = []
    for seed in (911, 912, 913):
        sid = await create_subject(vault, WRITER, person(seed))
        await record_basis(vault, WRITER, sid, "order.delivery", reference=f"B {seed}")
        subjects.append(sid)
    provider = _Recording(vault.kek, blocking=True)
    vault.deks = DekManager(provider, 0)
    lines = []
    async for blob in bulk.resolve_batch(
        vault, SHOP, frozenset({"order.delivery"}), purpose_id="order.delivery",
        identifier_kind="subject_id", identifiers=subjects,
    ):  # fmt: skip
        lines.extend(json.loads(x) for x in blob.decode().splitlines())
    assert [line["subject_id"] for line in lines] == subjects
    assert len(provider.threads) == 3
    assert all(t is not threading.main_thread() for t in provider.threads)


def test_the_pkcs11_provider_is_marked_blocking():
    """The PKCS#11 provider declares its unwraps blocking, so they leave the event loop."""
    assert Pkcs11KekProvider.blocking is True
