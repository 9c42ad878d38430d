"""Contacts made without a lookup, counted against the customer's contact-pressure basket."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody

from api.auth import actor_of, roles
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.schemas import ContactRecorded, ContactRecordIn, ContactReservationOut
from vault import pressure
from vault.clients import Role


def reservation_out(r: pressure.Reservation) -> ContactReservationOut:
    return ContactReservationOut(
        id=r.contact_id, month=r.month, points=r.points, used=r.used, basket=r.basket
    )


class ContactController(Controller):
    path = "/v1/contacts"
    tags = ["contact pressure"]

    @post(
        "/",
        opt=roles(Role.WRITER, Role.LOOKUP),
        operation_id="recordContact",
        summary="Record an outbound contact made without a lookup (reserves its points)",
        description=(
            "Counts the contact against the customer's monthly basket of contact points "
            "(shared by all brands) under the same rules as a lookup with `contact`. "
            "403 with reason `contact_budget_exhausted` or `contact_blocked_by_calamity` "
            "when the rules refuse it; the outcome is audited either way."
        ),
        status_code=201,
        responses=problems(*AUTHED, 404, 413, 422),
    )
    async def record(
        self, request: Request[Any, Any, Any], data: JSONBody[ContactRecordIn], vault: Vault
    ) -> ContactRecorded:
        reserved = await pressure.record_contact(
            vault,
            actor_of(request),
            subject_id=data.subject_id,
            spec=pressure.ContactSpec(
                brand=data.brand,
                channel=data.channel,
                type=data.type,
                priority=data.priority,
                touchpoint=data.touchpoint,
                followup=data.followup,
            ),
            purpose=data.purpose,
        )
        return ContactRecorded(subject_id=data.subject_id, contact=reservation_out(reserved))
