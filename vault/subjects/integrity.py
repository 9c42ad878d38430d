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

A write cannot write its denial in its own transaction: whatever it wrote before the
refusal would commit with it. `audited_attempt` therefore rolls the attempt back and writes
the denial in a transaction of its own, for failed checks and for the other refusals of a
client's attempt on a subject (`NotFound`, `AccessDenied`, `Conflict`), which must be on
record like its successes (security finding 6).
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
from vault.errors import (
    AccessDenied,
    Conflict,
    IntegrityFailure,
    InvariantViolation,
    NotFound,
    VaultError,
)
from vault.storage.rows import canonical_id
from vault.subjects.decision import DenyReason

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
    not_found: str | None = None,
) -> AsyncIterator[AuditedRead]:
    """A transaction for a read that opens sealed data. If the block raises
    `IntegrityCheckFailed`, the denial event is written in its place and committed, then
    `IntegrityFailure` is raised. With `not_found` (a reason, e.g. `subject_not_found`), a
    `NotFound` from the block is a refusal on record the same way, then raised.

    Only for blocks that write nothing but their own audit event after the reads: whatever
    the block wrote before the failure commits with the denial."""
    refused: VaultError | None = None
    async with ctx.transaction() as conn:
        read = AuditedRead(conn, subject_id, purpose, consent_id)
        try:
            yield read
        except IntegrityCheckFailed:
            refused, reason = IntegrityFailure(), DenyReason.INTEGRITY_ERROR.value
        except NotFound as exc:
            if not_found is None:
                raise
            refused, reason = exc, not_found
        if refused is not None:
            await audit.record(
                conn,
                at=at,
                actor=actor,
                action=action,
                decision=Decision.DENY,
                subject_id=read.subject_id,
                purpose=read.purpose,
                consent_id=read.consent_id,
                reason=reason,
            )
    if refused is not None:
        raise refused


class AuditedAttempt:
    """The connection of an `audited_attempt`, and what its denial event would name. A
    block sets `reason` (and `about(...)` the subject it found) before it raises a refusal
    whose generic reason would say less, e.g. `subject_erased` for a `Conflict`."""

    __slots__ = ("conn", "subject_id", "purpose", "fields", "reason", "not_found")

    def __init__(
        self,
        conn: AsyncConnection,
        subject_id: str | None,
        purpose: str | None,
        fields: list[str] | None,
        not_found: str,
    ) -> None:
        self.conn = conn
        self.subject_id, self.purpose, self.fields = subject_id, purpose, fields
        self.reason: str | None = None
        self.not_found = not_found

    def about(self, *, subject_id: str | None, purpose: str | None = None) -> None:
        self.subject_id, self.purpose = subject_id, purpose


def _reason_of(attempt: AuditedAttempt, exc: Exception) -> str:
    """The denial's reason: a failed check's, else what the block set, else the refusal's."""
    if isinstance(exc, IntegrityCheckFailed):
        return DenyReason.INTEGRITY_ERROR.value
    if attempt.reason is not None:
        return attempt.reason
    if isinstance(exc, AccessDenied):
        return str(exc.reason)
    return attempt.not_found if isinstance(exc, NotFound) else "conflict"


@asynccontextmanager
async def audited_attempt(
    ctx: VaultContext,
    actor: Actor,
    action: AuditAction | str,
    *,
    at: datetime,
    subject_id: str | None = None,
    purpose: str | None = None,
    fields: list[str] | None = None,
    not_found: str = "not_found",
) -> AsyncIterator[AuditedAttempt]:
    """A transaction for a client's attempt on a subject (a write, or a read other than the
    purpose-checked lookup) whose refusals must be on record like its successes.

    If the block raises `NotFound`, `AccessDenied`, `Conflict` or `IntegrityCheckFailed`,
    its transaction rolls back (nothing it wrote stays), the denial event (decision `deny`,
    the subject and purpose as the block last named them, and the reason: a `NotFound`
    names `not_found`, e.g. `subject_not_found`) is committed in a transaction of its own,
    and the refusal is raised again, a failed check as `IntegrityFailure`. Fail closed: if
    the denial cannot be written, that error (`Unavailable`) is raised instead; nothing
    changed either way. The success's own event is the block's to write. A `subject_id`
    that is not a UUID is client input (it could carry anything) and is not named."""
    if subject_id is not None and canonical_id(subject_id) != subject_id:
        subject_id = None
    attempt: AuditedAttempt | None = None
    try:
        async with ctx.transaction() as conn:
            attempt = AuditedAttempt(conn, subject_id, purpose, fields, not_found)
            yield attempt
    except (IntegrityCheckFailed, AccessDenied, NotFound, Conflict) as exc:
        if attempt is None:
            raise InvariantViolation("attempt is unset: only the block raises these") from exc
        async with ctx.transaction() as conn:
            await audit.record(
                conn,
                at=at,
                actor=actor,
                action=action,
                decision=Decision.DENY,
                subject_id=attempt.subject_id,
                purpose=attempt.purpose,
                fields=attempt.fields,
                reason=_reason_of(attempt, exc),
            )
        if isinstance(exc, IntegrityCheckFailed):
            raise IntegrityFailure() from None
        raise
