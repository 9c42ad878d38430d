"""Stored data that fails an integrity check is refused, and the refusal is audited.

A ciphertext that does not open (tampered, replayed from an older revision, moved to another
row) or a blind-index entry on the wrong row means someone changed the database behind the
vault's back, or it is damaged. Either way nothing of it may leave, and the attempt must be
on record like any other access: an audit event with the action that was tried, decision
`deny` and reason `integrity_error`, committed before the caller hears `IntegrityFailure`
(answered as a 500 problem that names no value and no check).

The single lookup and bulk resolution turn a failed check into a denial of their own (they
decide before anything is reserved). The other reads (export, privacy centre, consent
listing and proof) run in `audited_read`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.crypto import IntegrityCheckFailed
from vault.subjects.decision import DenyReason
from vault.errors import IntegrityFailure

if TYPE_CHECKING:
    from vault.context import VaultContext


class AuditedRead:
    """The connection of an `audited_read`, and what its denial event would name; a block
    that learns the subject only from its reads (a consent proof) names it with `about`."""

    __slots__ = ("conn", "subject_id", "purpose", "consent_id")

    def __init__(
        self,
        conn: AsyncConnection,
        subject_id: str | None,
        purpose: str | None,
        consent_id: str | None,
    ) -> None:
        self.conn = conn
        self.subject_id, self.purpose, self.consent_id = subject_id, purpose, consent_id

    def about(
        self, *, subject_id: str | None, purpose: str | None = None, consent_id: str | None = None
    ) -> None:
        self.subject_id, self.purpose, self.consent_id = subject_id, purpose, consent_id


@asynccontextmanager
async def audited_read(
    ctx: VaultContext,
    actor: Actor,
    action: AuditAction | str,
    *,
    at: datetime,
    subject_id: str | None = None,
    purpose: str | None = None,
    consent_id: str | None = None,
) -> AsyncIterator[AuditedRead]:
    """A transaction for a read that opens sealed data. If the block raises
    `IntegrityCheckFailed`, the denial event is written in its place and committed, then
    `IntegrityFailure` is raised.

    Only for blocks that write nothing but their own audit event after the reads: whatever
    the block wrote before the failure commits with the denial."""
    failed = False
    async with ctx.transaction() as conn:
        read = AuditedRead(conn, subject_id, purpose, consent_id)
        try:
            yield read
        except IntegrityCheckFailed:
            failed = True
            await audit.record(
                conn,
                at=at,
                actor=actor,
                action=action,
                decision=Decision.DENY,
                subject_id=read.subject_id,
                purpose=read.purpose,
                consent_id=read.consent_id,
                reason=DenyReason.INTEGRITY_ERROR.value,
            )
    if failed:
        raise IntegrityFailure()
