"""Tables of the recipients area (issue 16): the transactional outbox of domain events, the
recipients told about them, their subscriptions and secrets, and one delivery per event and
recipient.

A module of its own beside `tables.py` (same `Base`, so the same metadata): the package's
`__init__` imports it, so every user of `vault.storage.tables.metadata` sees these tables.
No contact value is stored here: events name a subject id, purposes and field names only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vault.storage.tables import SEQ, TZ, Base


class DomainEvent(Base):
    """One change a recipient may have to be told about, written in the change's own
    transaction (a rollback takes it along). `seq` orders the events; `fanned_out_at` is
    set once the deliveries for it exist."""

    __tablename__ = "domain_events"

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    #: JSON list of purpose ids concerned.
    purposes: Mapped[str] = mapped_column(Text)
    #: JSON list of field names (subject.rectified), else NULL. Names, never values.
    fields: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(TZ)
    fanned_out_at: Mapped[datetime | None] = mapped_column(TZ, index=True)


class Recipient(Base):
    """A system that receives contact data: an API client (`client_name` = the audit
    actor id of its lookups) or an external recipient the DPO registered."""

    __tablename__ = "recipients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: client or external.
    kind: Mapped[str] = mapped_column(String(16))
    client_name: Mapped[str | None] = mapped_column(String(100), unique=True)
    #: webhook or nats.
    transport: Mapped[str] = mapped_column(String(16))
    #: The webhook URL (validated, no credentials) or the NATS subject prefix.
    target: Mapped[str] = mapped_column(String(500))
    paused_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ)


class RecipientSubscription(Base):
    """Which event types (and purposes, or all with `*`) a recipient is told about;
    `scope` `received` (only subjects whose data it received) or `all` (external only)."""

    __tablename__ = "recipient_subscriptions"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("recipients.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("recipient_id", "event_type", "purpose"),)


class RecipientSecret(Base):
    """A webhook signing secret (an HMAC key), wrapped by the KEK like a DEK. The newest
    signs; after a rotation the previous one signs too until `valid_until`."""

    __tablename__ = "recipient_secrets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("recipients.id"), index=True)
    kek_version: Mapped[int | None] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(TZ)
    valid_until: Mapped[datetime | None] = mapped_column(TZ)


class Delivery(Base):
    """One event for one recipient (the notification a recipient acknowledges). Its id is
    the `webhook-id` / `Nats-Msg-Id` of every attempt, so receivers de-duplicate."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_seq: Mapped[int] = mapped_column(SEQ)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("recipients.id"))
    subject_id: Mapped[str] = mapped_column(String(36))
    #: pending, delivered or failed.
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(TZ)
    next_attempt_at: Mapped[datetime] = mapped_column(TZ)
    #: An error kind (`http_503`, `timeout`, ...), never a response body.
    last_error: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(TZ)
    #: deleted, updated or not_held, from the recipient's acknowledgement.
    ack_outcome: Mapped[str | None] = mapped_column(String(16))
    acked_at: Mapped[datetime | None] = mapped_column(TZ)
    #: The DPO closed an unacknowledged delivery: why, and who.
    closed_reason: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        UniqueConstraint("event_seq", "recipient_id"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_recipient_id_subject_id", "recipient_id", "subject_id"),
        Index("ix_deliveries_subject_id", "subject_id"),
    )


domain_events = DomainEvent.__table__
recipients = Recipient.__table__
recipient_subscriptions = RecipientSubscription.__table__
recipient_secrets = RecipientSecret.__table__
deliveries = Delivery.__table__
