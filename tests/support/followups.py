"""Agreed follow-ups for the domain tests: one agreed by the CRM, and a contact that names
one (the basket's reservation), with the defaults the follow-up tests share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.support.factories import WRITER
from vault.outreach import followups
from vault.outreach.basket import reserve

CRM_PURPOSES = frozenset({"account.service", "order.delivery"})


def window(clock: Any, start_hours: float = 24, length_hours: float = 8) -> dict[str, datetime]:
    """A due window starting `start_hours` from the clock's now."""
    start = clock.now() + timedelta(hours=start_hours)
    return {"due_from": start, "due_until": start + timedelta(hours=length_hours)}


async def agree(
    vault: Any, clock: Any, sid: str, purposes: frozenset[str] = CRM_PURPOSES, **kw: Any
) -> followups.Followup:
    """A follow-up the CRM records for `sid` (account.service by e-mail, a day ahead)."""
    args = {
        "subject_id": sid,
        "purpose": "account.service",
        "brand": "tresor",
        "touchpoint": "hotline.inbound",
        "note": "contract_question",
        **window(clock),
        **kw,
    }
    return await followups.create(vault, WRITER, purposes, **args)


async def contact(
    vault: Any,
    sid: str,
    *,
    followup: str | None = None,
    type: str = "service",
    channel: str = "email",
    purpose: str = "account.service",
) -> Any:
    """The basket's answer to a contact by the CRM that names `followup`."""
    async with vault.transaction() as conn:
        return await reserve(
            conn,
            vault,
            subject_id=sid,
            channel=channel,
            type=type,
            brand="tresor",
            priority="normal",
            now=vault.clock.now(),
            purpose=purpose,
            client="crm",
            followup=followup,
        )
