"""The purpose-checked lookup: the only way any client reads contact data."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.params import JSONBody

from api import metrics
from api.auth import actor_of, roles, take_lookups
from api.conditional import CONTACT, etag, etag_header
from api.deps import Vault
from api.idempotency import RepeatableOperation, retry_token
from api.openapi_docs import AUTHED, READ_DENIALS, problems
from api.schemas import contact_channel
from api.subjects.schemas import (
    BasisOut,
    ContactIn,
    ContactReservationOut,
    LookupRequest,
    LookupResponse,
)
from vault.access import lookup as lookup_service
from vault.admin.clients import ClientInfo, Role
from vault.errors import IntegrityFailure, InvalidInput
from vault.outreach import basket

_KINDS = ("subject_id", "email", "phone", "external_ref")


def contact_spec(
    contact: ContactIn | None, request: Request[Any, Any, Any] | None
) -> basket.ContactSpec | None:
    """The outbound contact a lookup announces, as the domain's reservation request; with
    the lookup's `request` and its `Idempotency-Key`, a retry reserves under the same
    contact ids (`None` for a rehearsal, which reserves nothing that stays)."""
    if contact is None:
        return None
    return basket.ContactSpec(
        brand=contact.brand,
        channel=contact.channel,
        type=contact.type,
        priority=contact.priority,
        touchpoint=contact.touchpoint,
        followup=contact.followup,
        retry_token=retry_token(request) if request is not None else None,
        campaign=contact.campaign,
    )


class LookupController(Controller):
    path = "/v1/lookup"
    tags = ["lookup"]

    @post(
        "/",
        opt=roles(Role.LOOKUP, Role.DPO),
        operation_id="lookup",
        operation_class=RepeatableOperation,
        response_headers=etag_header(
            "The subject's contact data state, for `If-Match` on `PATCH .../contact`"
        ),
        summary="Resolve contact data for a named purpose (audited, allowed or denied)",
        description=(
            "Give a purpose and exactly one of subject_id, email, phone, external_ref. "
            "Returns only the fields the purpose allows and the subject's lawful basis "
            "covers, with that basis. Denials are 403 with a `reason` code. With `contact`, "
            "revealing the data reserves the contact's points in the customer's monthly "
            "basket (with the customer's preferred channel, where the purpose allows it, as the "
            "channel charged and returned in `contact.channel`), or the lookup is denied "
            "`contact_budget_exhausted` / "
            "`contact_blocked_by_calamity`, or by the customer's own preferences "
            "`contact_quiet_hours` / `contact_cap_reached`. A lookup for an editorial or "
            "commercial purpose (or one marked `contact_required`) must announce its "
            "`contact` (else `contact_required`); a purpose scoped to brands refuses a contact "
            "for another brand (`brand_not_covered`). `preferred_channel` names the "
            "customer's preferred channel when the purpose allows several. Stored data that "
            "fails its integrity check (a ciphertext that does not open, a blind-index entry "
            "on another subject's row) is a 500 with `reason` `integrity_error`, audited as a "
            "denial; nothing is revealed or reserved."
        ),
        status_code=200,
        responses=problems(
            *AUTHED,
            404,
            409,
            413,
            422,
            500,
            reasons={403: READ_DENIALS, 404: ("subject_not_found",), 500: ("integrity_error",)},
        ),
    )
    async def lookup(
        self, request: Request[Any, Any, Any], data: JSONBody[LookupRequest], vault: Vault
    ) -> Response[LookupResponse]:
        given = [(k, getattr(data, k)) for k in _KINDS if getattr(data, k) is not None]
        if len(given) != 1:
            raise InvalidInput(
                "name exactly one identifier",
                {"identifier": "give exactly one of " + ", ".join(_KINDS)},
            )
        kind, value = given[0]
        client: ClientInfo = request.user
        contact = contact_spec(data.contact, request)
        known = data.purpose if data.purpose in vault.catalogue else None
        await take_lookups(request, 1)
        try:
            result = await lookup_service.lookup(
                vault,
                actor_of(request),
                client.purposes,
                purpose_id=data.purpose,
                identifier_kind=kind,
                identifier=value,
                fields=data.fields,
                contact=contact,
            )
        except (
            lookup_service.LookupDenied,
            lookup_service.LookupNotFound,
            IntegrityFailure,
        ) as exc:
            metrics.observe_lookup(known, "deny", str(exc.reason))
            raise
        metrics.observe_lookup(known, "allow")
        r = result.contact
        answer = LookupResponse(
            subject_id=result.subject_id,
            purpose=result.purpose,
            fields=result.fields,
            basis=BasisOut(
                id=result.basis_id, type=result.basis_type, expires_at=result.basis_expires_at
            ),
            contact=None
            if r is None
            else ContactReservationOut(
                id=r.contact_id,
                month=r.month,
                points=r.points,
                used=r.used,
                basket=r.basket,
                channel=contact_channel(r.channel),
            ),  # fmt: skip
            preferred_channel=contact_channel(r.preferred_channel) if r is not None else None,
        )
        return Response(answer, headers={"ETag": etag(CONTACT, result.contact_revision)})
