"""The deliverer's signing keys across claims, on both databases: what one claim unwrapped
is not used once the secret stops being valid."""

from __future__ import annotations

from datetime import timedelta

from tests.support.dsar import DPO, contract, new_subject
from tests.support.factories import ADMIN
from tests.support.receiver import serving
from tests.support.recipients import client_recipient, delivered, lookup_by, receiver
from vault.recipients import registry
from vault.recipients.delivery import Deliverer
from vault.recipients.signing import decode_secret
from vault.rights.restriction import lift_restriction, restrict


async def test_a_rotation_without_overlap_is_seen_at_the_next_claim(vault, clock):
    """After a rotation without overlap, the same deliverer signs the next notice with the
    new secret only: a receiver that knows only the old one refuses it, one that knows the
    new one takes it (the old key, unwrapped for an earlier claim, is not kept signing)."""
    state, app = receiver(vault, [])
    async with serving(app) as base:
        actor, old = await client_recipient(vault, "mailer", base + "/tresor/notices")
        state.keys.append(old)
        sid, _ = await new_subject(vault, 31)
        await contract(vault, sid)
        await lookup_by(vault, actor, sid)
        await restrict(vault, DPO, sid)
        deliverer = Deliverer(vault)
        try:
            assert (await deliverer.run()).delivered == 1
            rotated = await registry.rotate_secret(vault, ADMIN, "mailer", overlap=timedelta(0))
            await lift_restriction(vault, DPO, sid)
            await deliverer.run()
            (_, second) = await delivered(vault)
            assert second.status == "pending" and second.last_error == "http_401"
            state.keys[:] = [decode_secret(rotated)]
            clock.advance(timedelta(minutes=1))
            assert (await deliverer.run()).delivered == 1
        finally:
            await deliverer.close()
