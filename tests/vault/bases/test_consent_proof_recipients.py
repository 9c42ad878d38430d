"""The consent proof shows who was told about the consent's purpose and who confirmed
(Art. 19 GDPR), on both databases."""

from __future__ import annotations

from tests.support.dsar import DPO, EXPLICIT, new_subject
from tests.support.factories import WRITER
from tests.support.recipients import client_recipient, delivered, lookup_by
from vault.bases.consent_proof import consent_proof
from vault.bases.consents import record_basis, withdraw
from vault.recipients import acks
from vault.recipients.fanout import fan_out

URL = "http://127.0.0.1:9/hook"


async def test_proof_lists_the_withdrawal_notices_of_its_purpose(vault):
    """After a withdrawal told to the system that read the data for the purpose, the proof
    names that notice and its confirmation."""
    caller, _ = await client_recipient(vault, "callcentre", URL)
    sid, _ = await new_subject(vault, 71)
    sms = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    await lookup_by(vault, caller, sid, "offers.sms")
    await withdraw(vault, WRITER, sid, sms.id)
    await fan_out(vault)
    # The grant and the lookup share the frozen clock's instant: the grant is told too.
    notices = {n.event_type: n for n in await delivered(vault)}
    await acks.ack(vault, caller, notices["consent.withdrawn"].id, "deleted")
    proof = await consent_proof(vault, DPO, sms.id)
    assert [(n.recipient, n.event_type, n.ack_outcome) for n in proof.notices] == [
        ("callcentre", "consent.granted", None),
        ("callcentre", "consent.withdrawn", "deleted"),
    ]
