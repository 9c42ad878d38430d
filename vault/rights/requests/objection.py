"""An Art. 21(1) objection restricts while it is undecided (Art. 18(1)(d) GDPR).

Between the objection to processing on legitimate interests and the DPO's decision whether
compelling legitimate grounds override the subject's interests, the controller may only
store the data for the purposes objected to. So while a `legitimate_interest_objection`
request of the subject is open, the subject's live legitimate-interest bases of the
purposes it names carry `consents.objection_pending_at`, and a lookup for them is denied
`subject_restricted` (`vault.subjects.decision.decide`). The mark goes when no open
objection names the purpose any more: rejected (the grounds override: processing goes on),
or approved (the bases end: `vault.rights.restriction.object_to_legitimate_interest_in`).

`settle_in` recomputes the marks of one subject from its open objections; the request
workflow calls it in the transaction of every move of such a request, so the marks never
outlive (or precede) the requests that justify them. The purposes are in each request's
sealed payload, opened here with the subject's key.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.catalogue.purposes import LawfulBasis
from vault.rights.requests.kinds import RequestType
from vault.rights.requests.store import open_payload
from vault.rights.requests.transitions import OPEN
from vault.storage.rights_tables import dsar_requests
from vault.storage.tables import consents
from vault.subjects.store import load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def pending_purposes(ctx: VaultContext, conn: AsyncConnection, subject_id: str) -> set[str]:
    """The purposes named by the subject's open Art. 21(1) objections."""
    rows = (
        await conn.execute(
            select(dsar_requests)
            .where(dsar_requests.c.subject_id == subject_id)
            .where(dsar_requests.c.type == RequestType.LEGITIMATE_INTEREST_OBJECTION.value)
            .where(dsar_requests.c.status.in_([s.value for s in OPEN]))
        )
    ).all()
    if not rows:
        return set()
    subject = await load_subject(conn, subject_id)
    purposes: set[str] = set()
    for req in rows:
        payload = open_payload(ctx, subject, req) or {}
        purposes.update(str(p) for p in payload.get("purposes") or [])
    return purposes


async def settle_in(
    ctx: VaultContext, conn: AsyncConnection, subject_id: str, now: datetime
) -> set[str]:
    """Mark the subject's live legitimate-interest bases of the purposes its open
    objections name, and unmark every other; returns the purposes restricted now."""
    purposes = await pending_purposes(ctx, conn, subject_id)
    c = consents
    mine = c.c.subject_id == subject_id
    if purposes:
        await conn.execute(
            update(c)
            .where(
                and_(
                    mine,
                    c.c.basis == LawfulBasis.LEGITIMATE_INTEREST.value,
                    c.c.purpose.in_(sorted(purposes)),
                    c.c.objection_pending_at.is_(None),
                )
            )
            .values(objection_pending_at=now)
        )
    lifted = update(c).where(mine, c.c.objection_pending_at.is_not(None))
    if purposes:
        lifted = lifted.where(c.c.purpose.not_in(sorted(purposes)))
    await conn.execute(lifted.values(objection_pending_at=None))
    return purposes
