"""Table definitions: the declarative `Base` every table module shares, and the core tables
(subjects, consents, API clients, idempotency records, shared limit counters). Contact data
exists here only as ciphertext and blind-index digests.

The other areas' tables live beside this module, one module per area (`audit_tables`,
`rights_tables`, `outreach_tables`, `campaign_tables`, `recipient_tables`, `mail_tables`), on
the same `Base`, so `metadata` holds them all once the package is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
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
        # No index on kek_version (migration 0039): no query needs one, and a key rotation
        # would write an entry into it for every DEK.
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

    # The event's place in the HMAC chain is in `audit_seals` (migration 0010): events are
    # written once and never updated.


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


subjects = Subject.__table__
consents = Consent.__table__
consent_history = ConsentHistory.__table__
clients = Client.__table__
idempotency_records = IdempotencyRecord.__table__
limit_counters = LimitCounter.__table__
metadata = Base.metadata
