"""What a booking did or would do (`vault.campaigns.basket_holds`), in counts only: the
values the booking's callers (API, console, audit) report, kept apart from the SQL that
computes them."""

from __future__ import annotations

from dataclasses import dataclass

from vault.errors import Conflict


@dataclass(frozen=True, slots=True)
class Displacement:
    campaign_id: str
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class HeldCampaign:
    """A campaign a calamity campaign's cool-down holds, or the calamity campaign holding
    one (`vault.campaigns.holds`), and how many members it concerns."""

    campaign_id: str
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class BookingOutcome:
    """What a booking did (or, from `preview`, would do): counts only. `holds`: for a
    calamity campaign, the planned campaigns its cool-down holds; `held_by`: the booked
    calamity campaigns holding this one."""

    audience: int
    booked: int
    blocked: int
    no_basis: int
    displaced: tuple[Displacement, ...]
    holds: tuple[HeldCampaign, ...] = ()
    held_by: tuple[HeldCampaign, ...] = ()


class DisplacementNotConfirmed(Conflict):
    """Booking would displace other campaigns' bookings and that was not confirmed."""

    def __init__(self, outcome: BookingOutcome) -> None:
        super().__init__("booking would displace other campaigns; preview and confirm")
        self.outcome = outcome
