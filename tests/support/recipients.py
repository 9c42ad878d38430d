"""Shared set-up of the recipients tests: clients that look subjects up, their recipient
records, a receiver on loopback, and reading the deliveries back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from examples.receiver.app import ReceiverState, create_receiver
from tests.support.dsar import ALL_PURPOSES, look
from tests.support.factories import ADMIN
from vault.admin.clients import create_client
from vault.audit.events import Actor
from vault.recipients import registry
from vault.recipients.signing import decode_secret
from vault.storage.recipient_tables import deliveries, domain_events, recipients


async def client_recipient(vault, name: str, url: str, **kw: Any) -> tuple[Actor, bytes]:
    """An API client `name` with a webhook recipient at `url`; its actor and HMAC key."""
    await create_client(vault, ADMIN, name, "lookup", sorted(ALL_PURPOSES))
    _, secret = await registry.create_recipient(
        vault, ADMIN, name=name, kind="client", transport="webhook", target=url, **kw
    )
    assert secret is not None
    return Actor("client", name), decode_secret(secret)


async def lookup_by(vault, actor: Actor, sid: str, purpose: str = "order.delivery") -> None:
    await look(vault, purpose, "subject_id", sid, actor=actor)


def receiver(vault, keys: list[bytes]) -> tuple[ReceiverState, Any]:
    state = ReceiverState(keys=keys)
    return state, create_receiver(state, clock=lambda: vault.clock.now().timestamp())


async def delivered(vault) -> list[Any]:
    """Every delivery with its recipient's name and event type, in event order."""
    async with vault.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    select(
                        deliveries,
                        recipients.c.name.label("recipient"),
                        domain_events.c.type.label("event_type"),
                    )
                    .join(recipients, recipients.c.id == deliveries.c.recipient_id)
                    .join(domain_events, domain_events.c.seq == deliveries.c.event_seq)
                    .order_by(deliveries.c.event_seq, recipients.c.name)
                )
            ).all()
        )
