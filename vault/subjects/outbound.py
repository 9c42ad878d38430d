"""An outbound contact announced with a lookup: what the lookup needs from the basket.

A lookup or a batch that names a contact reveals data only together with that contact's
reservation in the customer's monthly basket, in the same transaction: a full basket, a
calamity cool-down, the customer's own quiet hours or cap, or a follow-up out of its
window deny the read like any other reason. The basket belongs to the outreach area, which
sits above this one (it uses the lookup's decision to record contacts without a lookup).
So the lookup and the batch know the contact only through these two protocols;
`vault.outreach.basket.ContactSpec` implements them, and the API builds one from the
request. No import goes upwards, and the basket's rules stay in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import Actor
from vault.catalogue.purposes import Purpose
from vault.subjects.decision import Deny

if TYPE_CHECKING:
    from vault.context import VaultContext


class Reservation(Protocol):
    """Points reserved for one contact, as the answer reports them; `used` and `basket`
    are the month's totals after it."""

    @property
    def contact_id(self) -> str: ...

    @property
    def month(self) -> str: ...

    @property
    def points(self) -> float: ...

    @property
    def used(self) -> float: ...

    @property
    def basket(self) -> float: ...

    @property
    def preferred_channel(self) -> str | None: ...

    @property
    def channel(self) -> str | None:
        """The channel used and charged (the preferred one when the purpose allows it)."""
        ...


class OutboundContact(Protocol):
    """A contact as a client announces it (brand, channel, type, priority, touchpoint);
    channel and type are filled in by `resolve`."""

    # Implementations are dataclasses: bulk resolution fills in a channel named beside the
    # contact with `dataclasses.replace`, which takes only dataclass instances.
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def brand(self) -> str: ...

    @property
    def channel(self) -> str | None: ...

    @property
    def type(self) -> str | None: ...

    @property
    def priority(self) -> str: ...

    @property
    def touchpoint(self) -> str | None: ...

    def resolve(self, ctx: VaultContext, purpose: Purpose | None) -> OutboundContact:
        """The contact with channel and type from the purpose, checked against it and the
        contact-pressure rules; raises `InvalidInput`. Called before anything is read."""
        ...

    def check_grant(
        self,
        ctx: VaultContext,
        client: str,
        client_purposes: frozenset[str],
        checked: Deny | tuple[str, ...],
    ) -> Deny | tuple[str, ...]:
        """`checked` (the purpose check's result), or a `Deny` when the client was not
        granted the contact's type or priority."""
        ...

    async def reserve(
        self,
        conn: AsyncConnection,
        ctx: VaultContext,
        *,
        subject_id: str,
        purpose_id: str,
        actor: Actor,
        now: datetime,
        with_followup: bool = True,
    ) -> Reservation | Deny:
        """Reserve the contact for one allowed subject in the caller's transaction, or
        deny it; `with_followup=False` ignores a follow-up the contact names (a batch)."""
        ...
