"""JetStream notices go out as one batch whose publish acknowledgements are awaited together:
every notice of the batch is stored and acknowledged (a repeated message id is stored once),
and without a server each notice answers an error instead of counting as delivered."""

from __future__ import annotations

import uuid

import nats

from vault.recipients.transports import NatsNotice, NatsTransport, stream_name


async def test_a_batch_is_stored_and_acknowledged_notice_by_notice(vault):
    """50 notices (one id repeated) in one batch: 50 successes, 49 messages in the stream,
    each under its event type's subject."""
    prefix = f"tresor-batch-{uuid.uuid4().hex[:10]}"
    ids = [str(uuid.uuid4()) for _ in range(49)]
    notices = [
        NatsNotice(prefix, "subject.erased" if i % 2 else "consent.withdrawn", mid, b"{}")
        for i, mid in enumerate(ids)
    ]
    notices.append(NatsNotice(prefix, "subject.erased", ids[0], b"{}"))
    transport = NatsTransport(vault.settings.nats_url, timeout=5.0)
    try:
        assert await transport.send_batch(notices) == [None] * 50
    finally:
        await transport.close()
    nc = await nats.connect(vault.settings.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream_name(prefix))
        assert info.state.messages == 49
        erased = await js.pull_subscribe(f"{prefix}.subject.erased", durable=None)
        msgs = await erased.fetch(24, timeout=5)
        assert {m.headers["Nats-Msg-Id"] for m in msgs} == set(ids[1::2])
        await js.delete_stream(stream_name(prefix))
    finally:
        await nc.close()


async def test_without_a_server_every_notice_of_the_batch_fails(vault):
    """An unreachable server: each notice answers a `nats_` error (none is delivered)."""
    transport = NatsTransport("nats://127.0.0.1:9", timeout=1.0)
    try:
        results = await transport.send_batch(
            [NatsNotice("tresor-none", "subject.erased", str(uuid.uuid4()), b"{}")] * 3
        )
    finally:
        await transport.close()
    assert len(results) == 3 and all(r is not None and r.startswith("nats_") for r in results)
