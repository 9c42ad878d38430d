"""Contacts made without a lookup, counted against the customer's contact-pressure basket."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody

from api.auth import actor_of, roles
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, READ_DENIALS, problems
from api.outreach.schemas import ContactRecorded, ContactRecordIn
from api.schemas import contact_channel
from api.subjects.schemas import ContactReservationOut
from vault.admin.clients import ClientInfo, Role
from vault.errors import InvalidInput
from vault.outreach import basket


def reservation_out(r: basket.Reservation) -> ContactReservationOut:
    return ContactReservationOut(
        id=r.contact_id, month=r.month, points=r.points, used=r.used, basket=r.basket,
        channel=contact_channel(r.channel),
    )  # fmt: skip


class ContactController(Controller):
    path = "/v1/contacts"
    tags = ["contact pressure"]

    @post(
        "/",
        opt=roles(Role.WRITER, Role.LOOKUP),
        operation_id="recordContact",
        operation_class=IdempotentOperation,
        summary="Record an outbound contact made without a lookup (reserves its points)",
        description=(
            "Counts the contact against the customer's monthly basket of contact points "
            "(shared by all brands) under the same rules and checks as a lookup with "
            "`contact`: the `purpose` must be one the client may use and the contact's "
            "channel and type must fit it (422), the subject's basis for it and its "
            "restriction decide (403 with the lookup's reason), a `calamity` type or a "
            "priority other than `normal` must be granted to the client "
            "(`contact_type_not_granted`, `contact_priority_not_granted`), and the basket "
            "may refuse it (`contact_budget_exhausted`, `contact_blocked_by_calamity`, ...). "
            "An unknown subject is a 404 `subject_not_found`. A contact the customer "
            "started (`direction: inbound`, a call or a reply) is recorded at 0 points "
            "without the basket's checks. Every outcome is audited."
        ),
        status_code=201,
        responses=problems(
            *AUTHED, 404, 413, 422, reasons={403: READ_DENIALS, 404: ("subject_not_found",)}
        ),
    )
    async def record(
        self, request: Request[Any, Any, Any], data: JSONBody[ContactRecordIn], vault: Vault
    ) -> ContactRecorded:
        client: ClientInfo = request.user
        try:
            reserved = await self._record(vault, request, client, data)
        except InvalidInput as exc:
            # The vault names the contact's fields as in a lookup's `contact` object; this
            # body has them at its top level, so the answer names them where they are.
            raise InvalidInput(
                str(exc), {k.removeprefix("contact."): v for k, v in exc.errors.items()}
            ) from None
        return ContactRecorded(subject_id=data.subject_id, contact=reservation_out(reserved))

    @staticmethod
    async def _record(
        vault: Vault, request: Request[Any, Any, Any], client: ClientInfo, data: ContactRecordIn
    ) -> basket.Reservation:
        return await basket.record_contact(
            vault,
            actor_of(request),
            client.purposes,
            subject_id=data.subject_id,
            spec=basket.ContactSpec(
                brand=data.brand,
                channel=data.channel,
                type=data.type,
                priority=data.priority,
                touchpoint=data.touchpoint,
                followup=data.followup,
                inbound=data.direction == "inbound",
            ),
            purpose_id=data.purpose,
        )
