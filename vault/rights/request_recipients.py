"""What a data-subject request waits for after it was carried out: the recipients told
about the change (Art. 19, 17(2) GDPR) confirming they acted, or the DPO closing the
rest with a reason. The request workflow (`requests`) asks here; the notices themselves
are the recipients area's.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from vault.recipients import acks
from vault.recipients.fanout import fan_out_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def notices_since(
    ctx: VaultContext, conn: AsyncConnection, subject_id: str, since: datetime
) -> list[acks.Notice]:
    """The subject's notices since `since`, fanning out its new events first (in the
    caller's transaction), so a request sees every recipient the change concerns."""
    await fan_out_subject(ctx, conn, subject_id)
    return await acks.notices_for_subject(conn, subject_id, since)


def told_note(notices: list[acks.Notice]) -> str:
    """For the request history: who was told (recipient names and event types only)."""
    told = sorted({f"{n.recipient} ({n.event_type})" for n in notices})
    return "recipients told: " + ", ".join(told)


def confirmed_note(notices: list[acks.Notice]) -> str:
    """For the request history: how each recipient confirmed, or that the DPO closed it."""
    parts = []
    for n in notices:
        if n.ack_outcome is not None:
            parts.append(f"{n.recipient}: {n.ack_outcome}")
        elif n.closed_reason is not None:
            parts.append(f"{n.recipient}: closed by the DPO ({n.closed_reason})")
    return "recipients confirmed: " + "; ".join(sorted(set(parts)))


def unconfirmed(notices: list[acks.Notice]) -> list[acks.Notice]:
    return [n for n in notices if n.ack_outcome is None and n.closed_reason is None]
