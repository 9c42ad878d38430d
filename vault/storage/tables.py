"""Table definitions. Contact data exists here only as ciphertext and blind-index digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
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
#: SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SEQ = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Subject(Base):
    """One data subject: a wrapped DEK, sealed fields and blind indexes, no plaintext."""

    __tablename__ = "subjects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    kek_version: Mapped[int | None] = mapped_column(Integer)
    wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    dek_version: Mapped[int] = mapped_column(Integer, default=1)
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

    __table_args__ = (Index("ix_subjects_kek_version", "kek_version"),)


class Consent(Base):
    """A lawful basis for one purpose: a consent with evidence, or a contract/legal/LI record."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    purpose: Mapped[str] = mapped_column(String(100))
    basis: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TZ)
    granted_at: Mapped[datetime | None] = mapped_column(TZ)
    expires_at: Mapped[datetime | None] = mapped_column(TZ)
    withdrawn_at: Mapped[datetime | None] = mapped_column(TZ)
    confirm_deadline: Mapped[datetime | None] = mapped_column(TZ)
    confirm_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    touchpoint: Mapped[str | None] = mapped_column(String(100))
    method: Mapped[str | None] = mapped_column(String(50))
    notice_version: Mapped[str | None] = mapped_column(String(100))
    notice_text_hash: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(8))
    collected_by: Mapped[str | None] = mapped_column(String(100))
    #: IP address and user agent of the grant, sealed under the subject's DEK.
    evidence_ct: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_consents_subject_id_purpose", "subject_id", "purpose"),)


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
    created_at: Mapped[datetime] = mapped_column(TZ)
    revoked_at: Mapped[datetime | None] = mapped_column(TZ)


class AuditEvent(Base):
    """Append-only audit trail; pseudonymous (subject ids, never contact data)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TZ, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    purpose: Mapped[str | None] = mapped_column(String(100))
    fields: Mapped[str | None] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(64))
    consent_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str | None] = mapped_column(Text)


subjects = Subject.__table__
consents = Consent.__table__
consent_history = ConsentHistory.__table__
clients = Client.__table__
audit_events = AuditEvent.__table__
metadata = Base.metadata
