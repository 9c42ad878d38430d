"""Audit events: who did what to which subject, for which purpose, with which outcome.

Events are written with the same connection and transaction as the change or read they
describe, so an access without its event cannot commit (fail closed). Events are
pseudonymous: subject ids, purpose ids and field *names*, never field values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.storage.tables import audit_events


class AuditAction(StrEnum):
    """`source:subject:action` tags, one per kind of event."""

    LOOKUP = "client:contact:lookup"
    SUBJECT_CREATE = "client:subject:create"
    CONTACT_RECTIFY = "client:contact:rectify"
    CONSENT_GRANT = "client:consent:grant"
    BASIS_RECORD = "client:basis:record"
    CONSENT_WITHDRAW = "client:consent:withdraw"
    CONSENT_LIST = "client:consent:list"
    CONSENT_CONFIRM = "subject:consent:confirm"
    DOI_MAIL = "system:consent:confirmation_mail"
    KEYS_ROTATE = "admin:keys:rotate"
    KEYS_REWRAP = "admin:keys:rewrap"
    KEYS_RETIRE = "admin:keys:retire"
    CLIENT_CREATE = "admin:client:create"
    CLIENT_REVOKE = "admin:client:revoke"


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API client, the subject itself, an admin at the CLI, or the system."""

    type: str
    id: str
    request_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.type}:{self.id}"


SYSTEM = Actor("system", "tresor")


async def record(
    conn: AsyncConnection,
    *,
    at: datetime,
    actor: Actor,
    action: AuditAction,
    decision: Decision,
    subject_id: str | None = None,
    purpose: str | None = None,
    fields: list[str] | tuple[str, ...] | None = None,
    reason: str | None = None,
    consent_id: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Append one event in the caller's transaction. Raises if it cannot be written."""
    await conn.execute(
        insert(audit_events).values(
            at=at,
            request_id=actor.request_id,
            actor_type=actor.type,
            actor_id=actor.id,
            action=str(action),
            subject_id=subject_id,
            purpose=purpose,
            fields=",".join(fields) if fields else None,
            decision=str(decision),
            reason=reason,
            consent_id=consent_id,
            detail=json.dumps(detail, sort_keys=True) if detail else None,
        )
    )
