"""Giving a consent in the privacy centre: the customer chooses a consent-based purpose of
the catalogue and how long it lasts (at most the purpose's default duration).

The evidence is the privacy centre itself (touchpoint `web.privacy_centre`, the wording
version `GIVE_NOTICE`, the page language, the address and browser of the request), and the
customer's click is express consent. A purpose that needs double opt-in starts
`pending_confirmation` and the confirmation link goes to the stored e-mail address, as for
a consent collected anywhere else (`vault.bases.consents.record_basis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from vault.audit.events import Actor
from vault.bases import consents
from vault.bases.consents import LANGUAGES, BasisRecord, Evidence
from vault.catalogue.purposes import LawfulBasis, Purpose
from vault.errors import InvalidInput

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The touchpoint of every consent given here (policies/touchpoints.toml).
GIVE_TOUCHPOINT = "web.privacy_centre"
#: The version of the privacy centre's consent wording the customer agreed to.
GIVE_NOTICE = "privacy-centre-consent-2026-12"
#: The durations offered, in days; each purpose offers those up to its default, and its
#: default itself.
DURATION_STEPS = (30, 90, 180, 365, 730)


def offerable(ctx: VaultContext) -> list[Purpose]:
    """The catalogue's consent-based purposes, in catalogue order."""
    return [p for p in ctx.catalogue.purposes.values() if p.lawful_basis is LawfulBasis.CONSENT]


def durations(purpose: Purpose) -> list[int]:
    """The durations (days) a customer may choose for the purpose, shortest first; its
    default duration is the longest (a purpose without one: the steps)."""
    if purpose.default_duration is None:
        return list(DURATION_STEPS)
    longest = purpose.default_duration.days
    return sorted({d for d in DURATION_STEPS if d < longest} | {longest})


async def give_consent(
    ctx: VaultContext,
    actor: Actor,
    subject_id: str,
    purpose_id: str,
    days: int,
    *,
    language: str,
    leave_out: Sequence[str] = (),
    ip: str | None = None,
    user_agent: str | None = None,
) -> BasisRecord:
    """Record the customer's own consent for `purpose_id` lasting `days` (one of
    `durations`), without the purpose's fields in `leave_out`; audited like every consent.
    Bad input changes nothing."""
    purpose = ctx.catalogue.get(purpose_id)
    if purpose is None or purpose.lawful_basis is not LawfulBasis.CONSENT:
        raise InvalidInput("not a consent purpose", {"purpose": "is not offered for consent"})
    if days not in durations(purpose):
        raise InvalidInput(
            "duration not offered",
            {"days": "one of " + ", ".join(str(d) for d in durations(purpose))},
        )
    evidence = Evidence(
        touchpoint=GIVE_TOUCHPOINT,
        method="double_opt_in" if purpose.double_opt_in else "web_form",
        notice_version=GIVE_NOTICE,
        language=language if language in LANGUAGES else "de",
        explicit=True,
        ip=ip[:64] if ip else None,
        user_agent=user_agent[:512] if user_agent else None,
    )
    return await consents.record_basis(
        ctx,
        actor,
        subject_id,
        purpose_id,
        evidence=evidence,
        expires_at=ctx.clock.now() + timedelta(days=days),
        excluded_fields=list(leave_out),
    )
