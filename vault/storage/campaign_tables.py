"""Campaign planning's tables (issue 21): campaigns, their audiences, the bookings that hold
points in customers' baskets, and the months a plan covers.

A module of its own beside `tables.py` (same `Base`, so the same metadata), imported by the
package's `__init__`. Subject ids only, never contact data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from vault.storage.tables import TZ, Base


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


campaigns = Campaign.__table__
campaign_audience = CampaignAudience.__table__
campaign_bookings = CampaignBooking.__table__
plan_months = PlanMonth.__table__
