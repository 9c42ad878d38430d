"""An objection to a change of the customer's address opens a restriction request.

"This was not me", from the link in the notice to the old address (`vault.subjects.identity`):
the subjects area ends every session and marks the change objected, and here a restriction
request (Art. 18(1)(a): accuracy contested) goes into the DPO's queue, linked to the
changes. The protection commits first and the request after it; a retry of the same link
opens a request that failed to open, so an objection never ends without one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vault.audit.events import Actor
from vault.rights.requests import create_request
from vault.subjects import identity_links
from vault.subjects.identity import ChangeRecord

if TYPE_CHECKING:
    from vault.context import VaultContext


async def object_by_token(ctx: VaultContext, actor: Actor, token: str) -> list[ChangeRecord]:
    """The old address objects: sessions end, the changes are objected, a restriction
    request is opened and linked to them. Returns the changes; `NotFound` for a link that
    is unknown, expired or used."""
    subject_id, change_ids = await identity_links.record_objection(ctx, actor, token)
    request = await create_request(
        ctx, actor, subject_id=subject_id, type="restriction", channel="email"
    )
    return await identity_links.attach_request(ctx, change_ids, request.id)
