"""Changing the customer's contact preferences, and reading them with their history.

Changes come from the customer in the privacy centre or from a writer client on the
customer's instruction, with evidence like a consent (touchpoint from the catalogue, notice
version, method, language; IP and user agent sealed under the subject's DEK). Every change
appends a history row and an audit event in the same transaction. Preferences hold no
contact data and no free text; audit events carry only the names of the changed parts.
Every read is audited too, a refused one (unknown subject) included. What a preference is
and how it decides is `vault.outreach.preferences`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases.consents import COLLECTION_METHODS, LANGUAGES, Evidence
from vault.clock import as_utc
from vault.crypto import seal_field
from vault.errors import InvalidInput, InvariantViolation, precondition_refusal
from vault.outreach.preferences import Preferences, load, parse
from vault.recipients import events as outbox
from vault.storage.outreach_tables import contact_preference_history, contact_preferences
from vault.subjects.decision import DenyReason
from vault.subjects.integrity import audited_attempt
from vault.subjects.store import load_live_subject, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Who changed the preferences: the customer in the privacy centre, or a writer client.
SOURCES = ("self_service", "client")
#: Wording version of the privacy-centre preferences form (evidence of self-service changes).
SELF_SERVICE_NOTICE = "privacy-centre-preferences-2026-11"
SELF_SERVICE_TOUCHPOINT = "web.privacy_centre"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    version: int
    at: datetime
    actor: str
    source: str
    touchpoint: str | None
    method: str | None
    notice_version: str | None
    language: str | None
    preferences: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PreferencesView:
    subject_id: str
    preferences: Preferences | None
    history: list[HistoryEntry] = field(default_factory=list)


def _validate_evidence(evidence: Evidence | None, ctx: Any) -> None:
    if evidence is None:
        raise InvalidInput(
            "a change on the customer's instruction needs evidence",
            {"evidence": "is required"},
        )
    errors: dict[str, str] = {}
    if evidence.touchpoint not in ctx.touchpoints:
        errors["evidence.touchpoint"] = "is not in the touchpoint catalogue"
    if evidence.method not in COLLECTION_METHODS:
        errors["evidence.method"] = "must be one of " + ", ".join(COLLECTION_METHODS)
    if (
        not isinstance(evidence.notice_version, str)
        or not 1 <= len(evidence.notice_version.strip()) <= 100
    ):
        errors["evidence.notice_version"] = "must be 1 to 100 characters"
    if evidence.language not in LANGUAGES:
        errors["evidence.language"] = "must be one of " + ", ".join(LANGUAGES)
    if evidence.notice_text_hash is not None and not re.fullmatch(
        r"(sha256:)?[0-9a-f]{64}", evidence.notice_text_hash
    ):
        errors["evidence.notice_text_hash"] = "must be a hex SHA-256 digest"
    if evidence.ip is not None and len(evidence.ip) > 64:
        errors["evidence.ip"] = "is too long"
    if evidence.user_agent is not None and len(evidence.user_agent) > 512:
        errors["evidence.user_agent"] = "is too long"
    if errors:
        raise InvalidInput("the evidence of the instruction is invalid", errors)


def self_service_evidence(
    language: str, *, method: str = "web_form", ip: str | None = None, ua: str | None = None
) -> Evidence:
    """Evidence of a change the customer made in the privacy centre."""
    return Evidence(
        touchpoint=SELF_SERVICE_TOUCHPOINT,
        method=method,
        notice_version=SELF_SERVICE_NOTICE,
        language=language if language in LANGUAGES else "de",
        ip=ip[:64] if ip else None,
        user_agent=ua[:512] if ua else None,
    )


def _changed(old: Preferences | None, new: Preferences) -> list[str]:
    before = old.to_json() if old is not None else {"preferred_channels": {}, "quiet": {}}
    after = new.to_json()
    names = {
        "timezone": "timezone",
        "preferred_channels": "preferred_channels",
        "quiet": "quiet",
        "monthly_cap_points": "monthly_cap",
    }
    return [names[k] for k in after if before.get(k) != after[k]]


async def set_preferences(
    ctx: VaultContext,
    actor: Actor,
    subject_id: str,
    raw: Mapping[str, Any],
    *,
    source: str,
    evidence: Evidence | None,
    if_match: frozenset[int] | None = None,
) -> PreferencesView:
    """Replace the subject's preferences with `raw` (validated by `parse`), keep the change
    in the history with its evidence, and audit it, all in one transaction.

    `if_match` (the versions the caller's `If-Match` names; 0 = none set yet; None: no
    precondition): the change is made only if the stored preferences are at one of them,
    checked on the locked subject row, else `PreconditionFailed` (`PreconditionRequired`
    for an empty set: the header was missing), audited as a denial.

    Raises `InvalidInput` (nothing changed), `NotFound`, or `Conflict` for an erased
    subject."""
    if source not in SOURCES:
        raise ValueError(source)
    new = parse(raw, ctx.pressure_rules)
    _validate_evidence(evidence, ctx)
    if evidence is None:
        raise InvariantViolation("evidence is unset")
    now = ctx.clock.now()
    action = (
        AuditAction.SUBJECT_PREFERENCES_SET
        if source == "self_service"
        else AuditAction.CLIENT_PREFERENCES_SET
    )
    # A refusal (unknown or erased subject) is audited too (finding 6).
    async with audited_attempt(
        ctx,
        actor,
        action,
        at=now,
        subject_id=subject_id,
        not_found=DenyReason.SUBJECT_NOT_FOUND.value,
    ) as attempt:
        conn = attempt.conn
        subject = await load_live_subject(attempt, subject_id)
        old = await load(conn, subject_id)
        current = old.version if old is not None else 0
        refusal = precondition_refusal(current, if_match)
        if refusal is not None:
            attempt.reason = refusal.reason
            raise refusal
        version = current + 1
        values = {
            "timezone": new.timezone,
            "channels": json.dumps(new.to_json()["preferred_channels"]),
            "quiet": json.dumps(new.to_json()["quiet"]),
            "monthly_cap_tenths": new.monthly_cap_tenths,
            "version": version,
            "updated_at": now,
        }
        if old is None:
            await conn.execute(insert(contact_preferences).values(subject_id=subject_id, **values))
        else:
            await conn.execute(
                update(contact_preferences)
                .where(contact_preferences.c.subject_id == subject_id)
                .values(**values)
            )
        evidence_ct = None
        if evidence.ip or evidence.user_agent:
            dek = ctx.deks.dek(subject_id, subject.kek_version, subject.wrapped_dek)
            evidence_ct = seal_field(
                dek,
                subject_id,
                f"preference_evidence:{version}",
                subject.dek_version,
                json.dumps({"ip": evidence.ip, "user_agent": evidence.user_agent}),
            )
        await conn.execute(
            insert(contact_preference_history).values(
                subject_id=subject_id,
                version=version,
                at=now,
                actor=actor.label,
                source=source,
                touchpoint=evidence.touchpoint,
                method=evidence.method,
                notice_version=evidence.notice_version.strip(),
                notice_text_hash=evidence.notice_text_hash,
                language=evidence.language,
                evidence_ct=evidence_ct,
                preferences=json.dumps(new.to_json()),
                request_id=actor.request_id,
            )
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            # Names of the changed parts and catalogue ids only: no values, no free text.
            detail={
                "preferences": {
                    "version": version,
                    "changed": _changed(old, new),
                    "touchpoint": evidence.touchpoint,
                    "method": evidence.method,
                }
            },
        )
        await outbox.emit(conn, outbox.EventType.PREFERENCES_CHANGED, subject_id=subject_id, at=now)
        view = await _view(conn, subject_id)
    return view


async def _view(conn: AsyncConnection, subject_id: str) -> PreferencesView:
    prefs = await load(conn, subject_id)
    rows = (
        await conn.execute(
            select(contact_preference_history)
            .where(contact_preference_history.c.subject_id == subject_id)
            .order_by(contact_preference_history.c.id.desc())
            .limit(100)
        )
    ).all()
    return PreferencesView(
        subject_id=subject_id,
        preferences=prefs,
        history=[
            HistoryEntry(
                version=r.version,
                at=as_utc(r.at),
                actor=r.actor,
                source=r.source,
                touchpoint=r.touchpoint,
                method=r.method,
                notice_version=r.notice_version,
                language=r.language,
                preferences=json.loads(r.preferences),
            )
            for r in rows
        ],
    )


async def get_preferences(ctx: VaultContext, actor: Actor, subject_id: str) -> PreferencesView:
    """The subject's preferences (None when never set) and their history, newest first.
    The read is audited, a refused one (unknown subject) too."""
    now = ctx.clock.now()
    action = (
        AuditAction.SUBJECT_PREFERENCES_READ
        if actor.type == "subject"
        else AuditAction.CLIENT_PREFERENCES_READ
    )
    async with audited_attempt(
        ctx,
        actor,
        action,
        at=now,
        subject_id=subject_id,
        not_found=DenyReason.SUBJECT_NOT_FOUND.value,
    ) as attempt:
        conn = attempt.conn
        await load_subject(conn, subject_id)
        view = await _view(conn, subject_id)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            subject_id=subject_id,
        )
    return view
