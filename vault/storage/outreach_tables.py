"""Outreach's tables: the monthly contact baskets, the contacts made, the customers'
contact preferences with their history, and follow-ups.

A module of its own beside `tables.py` (same `Base`, so the same metadata), imported by the
package's `__init__`. No contact values: contacts name channels, never addresses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vault.storage.tables import SEQ, TZ, Base


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


contact_budgets = ContactBudget.__table__
contacts = ContactRecord.__table__
contact_preferences = ContactPreference.__table__
contact_preference_history = ContactPreferenceHistory.__table__
followups = Followup.__table__
