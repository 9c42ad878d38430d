"""The data-subject rights' tables: requests and their history, fields retained after
erasure, the self-service sign-in challenges, browser sessions, lock-outs and identity
changes.

A module of its own beside `tables.py` (same `Base`, so the same metadata), imported by the
package's `__init__`. Contact data only as ciphertext and blind-index digests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vault.storage.tables import SEQ, TZ, Base


class RetainedFields(Base):
    """Fields kept after erasure under a legal obligation (Art. 17(3)), with a key of their
    own, so shredding the subject's DEK does not take them along; shredded in turn when
    `retain_until` has passed."""

    __tablename__ = "retained_fields"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    kek_version: Mapped[int | None] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    fields_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    retain_until: Mapped[datetime] = mapped_column(TZ, index=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    shredded_at: Mapped[datetime | None] = mapped_column(TZ)


class DsarRequest(Base):
    """A data-subject request (Art. 15-22) with its legal deadline (Art. 12(3))."""

    __tablename__ = "dsar_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(TZ)
    due_at: Mapped[datetime] = mapped_column(TZ, index=True)
    extended_at: Mapped[datetime | None] = mapped_column(TZ)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(TZ)
    completed_at: Mapped[datetime | None] = mapped_column(TZ)
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    #: What the subject asked for (e.g. the corrected address), sealed under its DEK.
    payload_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(TZ)


class DsarRequestHistory(Base):
    """Append-only history of a request's status changes."""

    __tablename__ = "dsar_request_history"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("dsar_requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(TZ)
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class SelfServiceChallenge(Base):
    """A one-time code sent to a stored address to prove identity in self-service.

    Keyed by the address's blind-index digest, so rate limits per address need no
    plaintext; the code is stored only as a hash."""

    __tablename__ = "self_service_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    identifier_digest: Mapped[str] = mapped_column(String(64), index=True)
    #: Indexed (migration 0012): codes are also limited per subject, across its addresses.
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    code_hash: Mapped[str | None] = mapped_column(String(64))
    #: HMAC of the one-time sign-in link mailed instead of a code while the customer's
    #: code sign-in is locked (migration 0014; `vault.selfservice.open_link_session`).
    link_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    client_ip_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(TZ, index=True)
    expires_at: Mapped[datetime] = mapped_column(TZ)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(TZ)


class WebSession(Base):
    """A server-side browser session: a privacy-centre (`kind` "privacy", a subject) or a
    DPO-console session (`kind` "console", an API client). The cookie carries a random id;
    only its keyed digest is stored. A session is live while it is not ended, its absolute
    expiry is ahead and it was seen within the idle timeout; every request reads this one row
    by its primary key, so an ending written by one node holds on every node at once."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    client_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: A console session's actor on the trail: the client's name, or `sso:<subject>` for
    #: a DPO signed in through the organisation's identity provider (no client row).
    account: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(TZ)
    last_seen_at: Mapped[datetime] = mapped_column(TZ)
    #: The absolute expiry, whatever the activity.
    expires_at: Mapped[datetime] = mapped_column(TZ)
    ended_at: Mapped[datetime | None] = mapped_column(TZ)
    #: Why it ended: signed_out, idle, expired, revoked, erased, identity_changed.
    ended_why: Mapped[str | None] = mapped_column(String(32))
    #: The identifier the subject signed in with (`email` or `phone`; migration 0012). The
    #: code itself always went to the stored e-mail address, and any change of that address
    #: ends every session, so a live session was opened through the address stored now.
    channel: Mapped[str | None] = mapped_column(String(16))
    #: A console session's role, `dpo` or `marketing` (migration 0034; NULL: a DPO's, as
    #: rows before it). Kept because a single sign-on session has no client row to ask.
    role: Mapped[str | None] = mapped_column(String(16))


class ConsoleSignIn(Base):
    """One attempt to sign in to the DPO console, ok or not, for its rate limits across
    nodes: the account (client id or single sign-on subject) and the address only as keyed
    digests. Purged with the sessions once it no longer counts."""

    __tablename__ = "console_signins"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TZ, index=True)
    account_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)


class SelfServiceLockout(Base):
    """Wrong sign-in codes of one subject, across all its addresses, and the escalating
    lock they led to (security finding 7). No address, only the pseudonymous id."""

    __tablename__ = "self_service_lockouts"

    #: The subject's id; for an address that belongs to no subject, its digest, so that an
    #: unknown address costs the same work and gets the same answers as a known one.
    lock_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Wrong codes since the last lock, the last successful sign-in or a quiet day.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: How many locks in a row (1: the first period, 2: the second, ...).
    level: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(TZ)
    last_failure_at: Mapped[datetime | None] = mapped_column(TZ)


class IdentityChange(Base):
    """A change of an identifying address (e-mail or phone) of a subject (security finding
    1). Holds keyed digests (the blind index) of the old and new value, never plaintext,
    and the HMAC of the token mailed to the old address to confirm or object. While
    `pending` inside its cooling-off, or `objected`, sessions through the new e-mail
    address are restricted (`vault.subjects.identity`)."""

    __tablename__ = "identity_changes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    #: 1, 2, ... per subject, assigned under the subject's row lock: the order of changes
    #: made within one clock tick (the earliest open change names the trusted address).
    ordinal: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    old_digest: Mapped[str | None] = mapped_column(String(64))
    new_digest: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(TZ)
    changed_by: Mapped[str] = mapped_column(String(120))
    cooling_off_until: Mapped[datetime] = mapped_column(TZ)
    #: pending, confirmed or objected.
    status: Mapped[str] = mapped_column(String(16))
    #: HMAC of the token in the notice; one notice (one token) may cover two changes.
    token_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(TZ)
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    #: The restriction request an objection opened for the DPO.
    request_id: Mapped[str | None] = mapped_column(String(36))


retained_fields = RetainedFields.__table__
dsar_requests = DsarRequest.__table__
dsar_request_history = DsarRequestHistory.__table__
self_service_challenges = SelfServiceChallenge.__table__
web_sessions = WebSession.__table__
console_signins = ConsoleSignIn.__table__
self_service_lockouts = SelfServiceLockout.__table__
identity_changes = IdentityChange.__table__
