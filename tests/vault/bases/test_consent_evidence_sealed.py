"""A consent's IP address and user agent on both databases: stored only sealed, nothing
sealed without them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select

from tests.support.consent_records import (
    IP,
    NEWS,
    USER_AGENT,
    basis_record,
    new_subject,
    table_rows,
)
from tests.support.factories import WRITER
from vault.bases.consents import evidence_secrets, record_basis
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consent_history, consents, subjects

# --- sealed evidence -------------------------------------------------------------------


def _blobs(row: Any, skip: tuple[str, ...] = ()) -> list[bytes]:
    return [
        v if isinstance(v, bytes) else str(v).encode()
        for k, v in row._mapping.items()
        if v is not None and k not in skip
    ]


async def test_ip_and_user_agent_are_stored_only_sealed(vault):
    """The grant's IP address and user agent exist only inside evidence_ct and open again with the
    subject's key."""
    sid = await new_subject(vault)
    evidence = replace(NEWS, ip=IP, user_agent=USER_AGENT)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=evidence)
    secrets = [IP.encode(), USER_AGENT.encode(), b"TresorTestBrowser"]

    (row,) = await table_rows(vault, consents, consents.c.id)
    assert row.evidence_ct
    for blob in _blobs(row):
        assert not any(s in blob for s in secrets)
    for table, order in (
        (consent_history, consent_history.c.id),
        (audit_events, audit_events.c.seq),
    ):
        for other in await table_rows(vault, table, order):
            for blob in _blobs(other):
                assert not any(s in blob for s in secrets)
    listed = await basis_record(vault, sid, rec.id)
    assert IP not in repr(listed) and USER_AGENT not in repr(listed)

    async with vault.engine.connect() as conn:
        subject = (await conn.execute(select(subjects).where(subjects.c.id == sid))).one()
        assert await evidence_secrets(vault, conn, subject, row) == {
            "ip": IP,
            "user_agent": USER_AGENT,
        }


async def test_evidence_without_ip_has_nothing_sealed(vault):
    """Evidence without IP or user agent stores no sealed part and recovers as empty."""
    sid = await new_subject(vault)
    await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (row,) = await table_rows(vault, consents, consents.c.id)
    assert row.evidence_ct is None
    async with vault.engine.connect() as conn:
        subject = (await conn.execute(select(subjects).where(subjects.c.id == sid))).one()
        assert await evidence_secrets(vault, conn, subject, row) == {}
