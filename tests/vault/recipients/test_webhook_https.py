"""Webhooks over HTTPS through the pinned connection path, against the reference receiver
served with TLS: the notice arrives when the receiver's CA is trusted, is refused with an
untrusted CA, and the certificate is checked against the URL's host name (not the pinned
address), so a name the certificate does not carry fails even on the right address."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from examples.receiver.app import ReceiverState, create_receiver
from tests.support.receiver import serving
from vault.recipients.signing import new_key
from vault.recipients.transports import WebhookTransport


class Answers:
    """A resolver answering every name with loopback, recording the names asked."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return ["127.0.0.1"]


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_files(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[str, str]]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    yield str(chain), str(key)


@pytest.fixture
async def receiver(server_files: tuple[str, str]) -> AsyncIterator[tuple[str, ReceiverState]]:
    state = ReceiverState(keys=[new_key()])
    async with serving(create_receiver(state), tls=server_files) as base:
        yield base.rsplit(":", 1)[1], state


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _deliver(transport: WebhookTransport, url: str, key: bytes, msg_id: str) -> str | None:
    body = (
        b'{"type":"subject.erased","timestamp":"2026-01-01T00:00:00+00:00","data":'
        b'{"notification_id":"' + msg_id.encode() + b'","subject_id":"s1","purposes":[],'
        b'"occurred_at":"2026-01-01T00:00:00+00:00","ack_url":"https://t.invalid/ack"}}'
    )
    return await transport.send(url, msg_id, body, [key], int(time.time()), recipient="r1")


async def test_delivery_over_https_with_the_ca_trusted(ca, receiver):
    """Trusted CA: a notice to `https://localhost` (pinned to the checked loopback address)
    and one to the `https://127.0.0.1` literal both arrive and verify at the receiver."""
    port, state = receiver
    resolver = Answers()
    transport = WebhookTransport(allow_private=True, resolver=resolver, ssl_context=_trusting(ca))
    try:
        by_name = f"https://localhost:{port}/tresor/notices"
        assert await _deliver(transport, by_name, state.keys[0], "msg_https_1") is None
        by_address = f"https://127.0.0.1:{port}/tresor/notices"
        assert await _deliver(transport, by_address, state.keys[0], "msg_https_2") is None
    finally:
        await transport.close()
    assert state.seen == {"msg_https_1", "msg_https_2"}
    assert resolver.lookups == ["localhost"]


async def test_an_untrusted_ca_is_refused(receiver):
    """The receiver's certificate from a CA the sender does not trust: the TLS handshake
    fails (`connect_error`), nothing reaches the receiver."""
    port, state = receiver
    transport = WebhookTransport(
        allow_private=True, resolver=Answers(), ssl_context=_trusting(trustme.CA())
    )
    try:
        url = f"https://localhost:{port}/tresor/notices"
        assert await _deliver(transport, url, state.keys[0], "msg_untrusted") == "connect_error"
    finally:
        await transport.close()
    assert state.seen == set()


async def test_a_name_the_certificate_does_not_carry_is_refused(ca, receiver):
    """`wrong.test` resolves (pinned) to the receiver's own address, but its certificate
    names localhost and 127.0.0.1 only: the name check refuses it, nothing arrives."""
    port, state = receiver
    resolver = Answers()
    transport = WebhookTransport(allow_private=True, resolver=resolver, ssl_context=_trusting(ca))
    try:
        url = f"https://wrong.test:{port}/tresor/notices"
        assert await _deliver(transport, url, state.keys[0], "msg_wrong_name") == "connect_error"
    finally:
        await transport.close()
    assert resolver.lookups == ["wrong.test"]
    assert state.seen == set()
