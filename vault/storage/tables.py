"""Table definitions. Contact data exists here only as ciphertext and blind-index digests."""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)
#: The partial indexes' conditions (migration 0027), spelt as the queries spell them.
LEGACY_REVISION = "contact_revision = 0"
LEGACY_TEXTS = "reference IS NOT NULL OR notice_version IS NOT NULL"
#: SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SEQ = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Every model here is mapped to a plain Table (no __table__ = select(...) mappings), so
    # the module-level tables below are typed as Table, which insert/update/delete accept;
    # SQLAlchemy types `__table__` as the wider FromClause.
    __table__: ClassVar[Table]


class Subject(Base):
    """One data subject: a wrapped DEK, sealed fields and blind indexes, no plaintext."""

    __tablename__ = "subjects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    kek_version: Mapped[int | None] = mapped_column(Integer)
    wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    dek_version: Mapped[int] = mapped_column(Integer, default=1)
    #: Write counter of the contact fields, bound into their ciphertexts' associated data
    #: (`vault.crypto.fields`): an older ciphertext put back no longer opens. 0 = sealed
    #: before migration 0013 (no revision in the associated data).
    contact_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    email_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    name_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    postal_address_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    external_ref_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    external_ref_bidx: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    erased_at: Mapped[datetime | None] = mapped_column(TZ)
    #: Objection to direct marketing (Art. 21(2)): blocks new marketing bases until opt-in.
    marketing_objection_at: Mapped[datetime | None] = mapped_column(TZ)
    #: When the retention sweeper must look at the subject next (migration 0027; stamped
    #: by `vault.subjects.retention_schedule`); NULL: only a new write can make it due.
    retention_check_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (
        Index("ix_subjects_kek_version", "kek_version"),
        # The retention sweep's keyset over the subjects stamped due (migration 0027).
        Index("ix_subjects_retention_check_at_id", "retention_check_at", "id"),
        # Rows sealed before migration 0013, found by the retention run without a scan of
        # every subject (migration 0027; empty once they are brought up to date).
        Index(
            "ix_subjects_legacy_revision",
            "id",
            postgresql_where=text(LEGACY_REVISION),
            sqlite_where=text(LEGACY_REVISION),
        ),
    )


class Consent(Base):
    """A lawful basis for one purpose: a consent with evidence, or a contract/legal/LI record."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    purpose: Mapped[str] = mapped_column(String(100))
    basis: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    #: Plaintext only in rows written before migration 0013; newer rows seal it in
    #: `reference_ct` (the retention sweep seals old rows, erasure clears both).
    reference: Mapped[str | None] = mapped_column(String(200))
    #: Free text (e.g. a contract number) sealed under the subject's DEK (migration 0013).
    reference_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(TZ)
    granted_at: Mapped[datetime | None] = mapped_column(TZ)
    expires_at: Mapped[datetime | None] = mapped_column(TZ)
    withdrawn_at: Mapped[datetime | None] = mapped_column(TZ)
    confirm_deadline: Mapped[datetime | None] = mapped_column(TZ)
    confirm_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    touchpoint: Mapped[str | None] = mapped_column(String(100))
    method: Mapped[str | None] = mapped_column(String(50))
    #: Plaintext only in rows written before migration 0013, like `reference`.
    notice_version: Mapped[str | None] = mapped_column(String(100))
    #: The notice version (free text) sealed under the subject's DEK (migration 0013).
    notice_version_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    notice_text_hash: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(8))
    collected_by: Mapped[str | None] = mapped_column(String(100))
    #: IP address and user agent of the grant, sealed under the subject's DEK.
    evidence_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Fields of the purpose the customer left out of this consent, comma-separated and
    #: sorted (NULL: none); a lookup that would reveal one is `field_not_covered`
    #: (migration 0024).
    excluded_fields: Mapped[str | None] = mapped_column(String(200))
    #: The brands the consent's evidence names, comma-separated and sorted (NULL: every
    #: brand the purpose covers); a contact for another brand is `brand_not_covered`
    #: (migration 0038).
    brands: Mapped[str | None] = mapped_column(String(200))
    #: Since when an Art. 21(1) objection to this legitimate-interest basis is undecided
    #: (NULL: none): processing is restricted meanwhile, Art. 18(1)(d), and a lookup is
    #: `subject_restricted` (migration 0033, `vault.rights.requests.objection`).
    objection_pending_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (
        Index("ix_consents_subject_id_purpose", "subject_id", "purpose"),
        # The retention sweep's expiry and lapse find the bases due by range (migration 0027).
        Index("ix_consents_status_expires_at", "status", "expires_at"),
        Index("ix_consents_status_confirm_deadline", "status", "confirm_deadline"),
        # Free text in plaintext from before migration 0013 (see ix_subjects_legacy_revision).
        Index(
            "ix_consents_legacy_texts",
            "id",
            postgresql_where=text(LEGACY_TEXTS),
            sqlite_where=text(LEGACY_TEXTS),
        ),
    )


class ConsentHistory(Base):
    """Append-only history of every consent change; rows are never updated or deleted."""

    __tablename__ = "consent_history"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), index=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(TZ)
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime | None] = mapped_column(TZ)


class Client(Base):
    """An internal system or person holding an API key (stored only as an HMAC)."""

    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    purposes: Mapped[str] = mapped_column(Text, default="[]")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: How `key_hash` was made (`vault.admin.clients`): rows from before migration 0015
    #: are 1 (the server default), new ones 2, and a 1 becomes 2 on the key's next use.
    key_hash_version: Mapped[int] = mapped_column(Integer, default=2, server_default="1")
    created_at: Mapped[datetime] = mapped_column(TZ)
    revoked_at: Mapped[datetime | None] = mapped_column(TZ)
    #: The subject (RFC 4514, normalised) of the client certificate that authenticates this
    #: client over mutual TLS instead of its key (migration 0017; `vault.admin.certificates`).
    cert_subject: Mapped[str | None] = mapped_column(String(500), unique=True)
    #: The key replaced by `rotate-key` (its HMAC), valid until `previous_key_until`.
    previous_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_key_until: Mapped[datetime | None] = mapped_column(TZ)
    #: When the current key was issued (creation or the last rotation).
    key_created_at: Mapped[datetime | None] = mapped_column(TZ)
    #: Last authenticated use of a key, written at most once a minute per client and node.
    last_used_at: Mapped[datetime | None] = mapped_column(TZ)
    #: Optional request rate: at most `rate_limit` requests per `rate_window` seconds.
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    rate_window: Mapped[int | None] = mapped_column(Integer)
    #: Optional lookups per UTC day (a batch lookup counts each of its items).
    daily_lookups: Mapped[int | None] = mapped_column(Integer)
    #: What customers read for this client in the privacy centre's access log ("Online-Shop"
    #: for `shop-backend`); NULL shows the name (migration 0024).
    display_name: Mapped[str | None] = mapped_column(String(100))


class AuditEvent(Base):
    """Append-only audit trail; pseudonymous (subject ids, never contact data)."""

    __tablename__ = "audit_events"
    #: Time ranges (console search, export, reports) on PostgreSQL through a BRIN index:
    #: events are appended in time order, so block ranges map to time ranges, and it costs
    #: an insert almost nothing, where a b-tree cost every event an entry (migration 0011).
    #: On PostgreSQL the table is range partitioned by month on `at` (migration 0030,
    #: `vault.audit.partitions`): a closed month is archived and dropped as a whole. There
    #: the primary key is `(seq, at)`, as PostgreSQL wants the partition key in it; SQLite
    #: keeps one table with `seq` alone (its rowid). `seq` comes from one sequence either way.
    __table_args__ = (
        Index("ix_audit_events_at", "at", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TZ)
    request_id: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(120), index=True)
    #: Not indexed (migration 0009): filters on it are suffix matches or match most rows.
    action: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    purpose: Mapped[str | None] = mapped_column(String(100))
    fields: Mapped[str | None] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(64))
    #: Not indexed (migration 0011): an event that names a consent names its subject too,
    #: so a consent's events are found through the subject's index (`consent_proof`).
    consent_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str | None] = mapped_column(Text)
    # The event's place in the HMAC chain is in `audit_seals` (migration 0010): events are
    # written once and never updated.


class AuditSeal(Base):
    """An event's place in the HMAC chain: its position and MAC, written once by the single
    sealer (off the request path) and never updated.

    A table of its own rather than two columns of `audit_events` (migration 0010): sealing
    appends narrow rows by COPY instead of updating every event a second time, which costs
    PostgreSQL a new row version, WAL for all of it and vacuum later, several times the
    append (docs/performance.md). The chain runs in `seq` order, so the head is the
    last row of this table's primary key."""

    __tablename__ = "audit_seals"

    #: The sealed event's `audit_events.seq`. No foreign key: a deleted event must leave
    #: its seal behind, so `verify` names the hole.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chain_pos: Mapped[int] = mapped_column(BigInteger)
    chain_mac: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed (Ed25519) statement of the chain head at a position, verifiable outside."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    chain_pos: Mapped[int] = mapped_column(BigInteger, unique=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(TZ)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))


class AuditArchive(Base):
    """A month of the audit trail written to the archive as one signed segment
    (`tresor audit archive`, vault/audit/archive.py), recorded only after the upload.

    The chain columns say where the segment sits in the chain (`prev_mac` it starts from,
    `last_pos`/`last_mac` it ends at), so once its events are pruned (`pruned_at`) the live
    table is verified from this row's end, and `verify --archive` joins segments to it."""

    __tablename__ = "audit_archives"

    #: `YYYY-MM` of the events' time stamps (UTC).
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    first_pos: Mapped[int] = mapped_column(BigInteger)
    last_pos: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(BigInteger)
    prev_mac: Mapped[str] = mapped_column(String(64))
    last_mac: Mapped[str] = mapped_column(String(64))
    #: Where the segment was written (no credentials: those come from the environment).
    url: Mapped[str] = mapped_column(String(1000))
    #: SHA-256 of the compressed segment as uploaded.
    sha256: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(TZ)
    #: Set before the month's events are deleted (`tresor audit prune`): from then on the
    #: live chain starts after `last_seq`, even while a crashed prune left rows behind.
    pruned_at: Mapped[datetime | None] = mapped_column(TZ)


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


class ContactBudget(Base):
    """Points used by one subject in one basket month (all brands share it). Reservations
    lock this row, so concurrent contacts for a subject never overspend the basket."""

    __tablename__ = "contact_budgets"

    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    #: In tenths of a point (channel factors such as 1.5 give fractional points).
    used_tenths: Mapped[int] = mapped_column(Integer, default=0)
    #: Tenths held by campaign bookings not yet used (vault.campaigns.booking): contacts
    #: outside a booking may only spend what is neither used nor booked (issue 21).
    booked_tenths: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(TZ)

    __table_args__ = (Index("ix_contact_budgets_month", "month"),)


class ContactRecord(Base):
    """One contact: an outbound one that reserved points, or one the customer started
    (append-only)."""

    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(TZ)
    month: Mapped[str] = mapped_column(String(7))
    brand: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(32))
    points_tenths: Mapped[int] = mapped_column(Integer)
    touchpoint: Mapped[str | None] = mapped_column(String(100))
    purpose: Mapped[str | None] = mapped_column(String(100))
    client: Mapped[str | None] = mapped_column(String(120))
    request_id: Mapped[str | None] = mapped_column(String(64))
    #: "outbound", or "inbound" for a contact the customer started (a call, a reply): 0
    #: points, and it starts no calamity cool-down (issue 21).
    direction: Mapped[str] = mapped_column(String(8), default="outbound", server_default="outbound")

    __table_args__ = (
        Index("ix_contacts_subject_id_at", "subject_id", "at"),
        Index("ix_contacts_month", "month"),
    )


class ContactPreference(Base):
    """A customer's own contact preferences (issue 7): preferred channel per communication
    type, quiet hours and days per channel in the customer's time zone, and an own monthly
    cap that can only lower the company basket. `channels` and `quiet` hold JSON."""

    __tablename__ = "contact_preferences"

    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    channels: Mapped[str] = mapped_column(Text)
    quiet: Mapped[str] = mapped_column(Text)
    #: In tenths of a point, like the basket; NULL = no own cap.
    monthly_cap_tenths: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class ContactPreferenceHistory(Base):
    """Append-only history of every preference change, with its evidence (like a consent)."""

    __tablename__ = "contact_preference_history"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(16))
    touchpoint: Mapped[str | None] = mapped_column(String(100))
    method: Mapped[str | None] = mapped_column(String(50))
    notice_version: Mapped[str | None] = mapped_column(String(100))
    notice_text_hash: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(8))
    #: IP address and user agent of the instruction, sealed under the subject's DEK.
    evidence_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The complete preferences after the change (JSON).
    preferences: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_contact_preference_history_subject_id_at", "subject_id", "at"),)


class Followup(Base):
    """A contact the customer asked for (an agreed follow-up, issue 7): who may call or
    write about what, in which due window; used once by a lookup or contact inside the
    window without counting against the basket. No free text: `note` is a kind from a
    fixed list (free text could carry contact data)."""

    __tablename__ = "followups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    brand: Mapped[str] = mapped_column(String(64))
    #: Where it was agreed (touchpoint catalogue).
    touchpoint: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(32))
    due_from: Mapped[datetime] = mapped_column(TZ)
    due_until: Mapped[datetime] = mapped_column(TZ)
    #: open, kept, missed, cancelled (an open one past `due_until` is missed).
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(120))
    closed_at: Mapped[datetime | None] = mapped_column(TZ)
    closed_by: Mapped[str | None] = mapped_column(String(120))
    #: The contact record (0 points) that kept it.
    contact_id: Mapped[str | None] = mapped_column(String(36))
    #: Who is to make the contact: a client or team name (issue 21 item 6); NULL = anyone
    #: allowed the purpose.
    assignee: Mapped[str | None] = mapped_column(String(100))
    #: How the CRM closed it (status `closed`): a kind from `CLOSE_OUTCOMES`, never free text.
    outcome: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_followups_status_due_from", "status", "due_from"),
        Index("ix_followups_status_due_until", "status", "due_until"),
        Index("ix_followups_assignee_status_due_from", "assignee", "status", "due_from"),
    )


class IdempotencyRecord(Base):
    """One `Idempotency-Key` of one API client (migration 0018): the request it was first
    used with (a digest of method, path and body), whether that request is still running,
    and its answer, sealed under a key of its own (the body may hold contact data). Kept
    24 hours (`expires_at`); the key itself is stored only as a digest."""

    __tablename__ = "idempotency_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(36))
    key_digest: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: in_progress (one request is doing the work), done (the answer is stored, or for a
    #: repeatable read none is: a retry runs again).
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZ)
    #: An in_progress record whose worker died is taken over after this.
    locked_until: Mapped[datetime] = mapped_column(TZ)
    expires_at: Mapped[datetime] = mapped_column(TZ, index=True)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_type: Mapped[str | None] = mapped_column(String(100))
    #: The stored answer's `ETag` (a revision tag, never data), sent again with the replay.
    response_etag: Mapped[str | None] = mapped_column(String(200))
    kek_version: Mapped[int | None] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_ct: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        Index(
            "uq_idempotency_records_client_id_key_digest", "client_id", "key_digest", unique=True
        ),
    )


class LimitCounter(Base):
    """One fixed-window counter shared by every process and node: failed authentications
    per client address, a client's requests or lookups. `key` names the limit and what it
    counts (an address's keyed digest, a client id), never a key or an address in clear."""

    __tablename__ = "limit_counters"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    #: Start of the window being counted, in seconds since the epoch.
    window_start: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)
    #: When the row may be deleted (the window has ended).
    expires_at: Mapped[datetime] = mapped_column(TZ, index=True)


class Campaign(Base):
    """A planned outbound campaign (issue 21): what, to whom, when, at which priority.
    States: draft -> booked -> sent, or cancelled. `order_key` is the arbitration order of
    its priority and rank (lower is served first), kept on its bookings too."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(32))
    rank: Mapped[int] = mapped_column(Integer)
    order_key: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(100))
    touchpoint: Mapped[str | None] = mapped_column(String(100))
    window_start: Mapped[datetime] = mapped_column(TZ)
    window_end: Mapped[datetime] = mapped_column(TZ)
    #: Basket month of the window's start: the month whose baskets the booking uses.
    month: Mapped[str] = mapped_column(String(7))
    #: "list" (uploaded subject ids or external references) or "basis" (everyone with a
    #: basis for the purpose when booked).
    audience_kind: Mapped[str] = mapped_column(String(8))
    owner: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)

    __table_args__ = (Index("ix_campaigns_month_state", "month", "state"),)


class CampaignAudience(Base):
    """One audience member of a campaign (subject ids only, never contact data)."""

    __tablename__ = "campaign_audience"

    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class CampaignBooking(Base):
    """A campaign's points held in one customer's basket month. Status: booked (held in
    `contact_budgets.booked_tenths`), used (a contact consumed it), displaced (a campaign of
    higher priority took the points), blocked (no room when booked), released (cancelled
    or sent without this contact)."""

    __tablename__ = "campaign_bookings"

    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    points_tenths: Mapped[int] = mapped_column(Integer)
    order_key: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    displaced_by: Mapped[str | None] = mapped_column(String(36))

    #: Queries naming a campaign use the primary key's prefix (migration 0036).
    __table_args__ = (Index("ix_campaign_bookings_subject_id_month", "subject_id", "month"),)


class PlanMonth(Base):
    """One row per basket month that has bookings: booking, cancelling and sending lock it,
    so two bookings for one month never interleave (contacts lock subjects' counter rows)."""

    __tablename__ = "plan_months"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)


subjects = Subject.__table__
consents = Consent.__table__
consent_history = ConsentHistory.__table__
clients = Client.__table__
audit_events = AuditEvent.__table__
audit_seals = AuditSeal.__table__
retained_fields = RetainedFields.__table__
dsar_requests = DsarRequest.__table__
dsar_request_history = DsarRequestHistory.__table__
self_service_challenges = SelfServiceChallenge.__table__
web_sessions = WebSession.__table__
console_signins = ConsoleSignIn.__table__
self_service_lockouts = SelfServiceLockout.__table__
identity_changes = IdentityChange.__table__
audit_checkpoints = AuditCheckpoint.__table__
audit_archives = AuditArchive.__table__
contact_budgets = ContactBudget.__table__
contacts = ContactRecord.__table__
contact_preferences = ContactPreference.__table__
contact_preference_history = ContactPreferenceHistory.__table__
followups = Followup.__table__
idempotency_records = IdempotencyRecord.__table__
limit_counters = LimitCounter.__table__
campaigns = Campaign.__table__
campaign_audience = CampaignAudience.__table__
campaign_bookings = CampaignBooking.__table__
plan_months = PlanMonth.__table__
metadata = Base.metadata

#: The partitions of `audit_events` on PostgreSQL (migration 0030): one table per month and
#: `DEFAULT`, created and dropped at run time by `vault.audit.partitions`, not by the model.
AUDIT_PARTITION = re.compile(r"audit_events_(y\d{4}m\d{2}|default)")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's filter for comparing the model with a database (`migrations/env.py`, the
    models-and-migrations test): the audit trail's partitions are parts of the one table
    the model describes (partitioned by `postgresql_partition_by`), not tables of their own."""
    return not (type_ == "table" and name is not None and AUDIT_PARTITION.fullmatch(name))
