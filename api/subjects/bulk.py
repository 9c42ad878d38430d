"""Bulk resolution (NDJSON stream) and the audience dry run: the lookup for whole audiences."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Stream

from api.auth import actor_of, roles, take_lookups
from api.deps import Vault
from api.idempotency import RepeatableOperation
from api.openapi_docs import AUTHED, READ_DENIALS, problems
from api.subjects.lookup import contact_spec
from api.subjects.schemas import BatchLine, BatchLookupRequest, DryRunRequest, DryRunResponse
from vault.access import bulk, dry_run
from vault.admin.clients import ClientInfo, Role
from vault.errors import InvalidInput

#: Request field -> identifier kind.
_LISTS = {
    "subject_ids": "subject_id",
    "emails": "email",
    "phones": "phone",
    "external_refs": "external_ref",
}
#: 10,000 identifiers of up to 320 characters need more than the default 64 KiB.
BULK_MAX_BODY_BYTES = 4 * 1024 * 1024
NDJSON = "application/x-ndjson"


def _identifiers(data: BatchLookupRequest | DryRunRequest) -> tuple[str, list[str]]:
    given = [(k, getattr(data, k)) for k in _LISTS if getattr(data, k) is not None]
    if len(given) != 1:
        raise InvalidInput(
            "name exactly one identifier list",
            {"identifiers": "give exactly one of " + ", ".join(_LISTS)},
        )
    name, values = given[0]
    return _LISTS[name], values


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for item in rest:
        yield item


class BulkLookupController(Controller):
    path = "/v1/lookup"
    tags = ["lookup"]

    @post(
        "/batch",
        opt=roles(Role.LOOKUP, Role.DPO),
        operation_id="lookupBatch",
        operation_class=RepeatableOperation,
        summary="Resolve contact data for up to 10,000 identifiers (NDJSON stream, audited)",
        description=(
            "Give a purpose and exactly one of subject_ids, emails, phones, external_refs "
            "(at most 10,000). The answer streams one NDJSON line per identifier, in input "
            "order, carrying its index `i` (never the identifier): the allowed fields and "
            "basis, or a `reason` with `status` 403 (denied), 404 (no subject), 422 "
            "(malformed identifier) or 500 (`integrity_error`: the stored data failed its "
            "integrity check; nothing revealed). With `contact`, each revealed line reserves "
            "the contact's "
            "points (returned in `contact`) or is denied `contact_budget_exhausted` / "
            "`contact_blocked_by_calamity`. An editorial or commercial purpose needs a "
            "`contact` (`contact_required` otherwise, for the whole batch), and a purpose "
            "scoped to brands refuses another brand's (`brand_not_covered`). "
            "Every line is audited in the transaction of its chunk; "
            "a chunk's lines leave only after that transaction committed. If a later chunk "
            "cannot be committed the stream ends with an `error` line (status 503, "
            "`from_i`). A purpose check that fails for the whole batch is a 403 problem. "
            "A line's `reason`: one of "
            + ", ".join(f"`{r}`" for r in (*READ_DENIALS, "subject_not_found"))
            + ", `invalid_identifier` (422), `duplicate_identifier` (409), `integrity_error`."
        ),
        status_code=200,
        request_max_body_size=BULK_MAX_BODY_BYTES,
        responses={
            200: ResponseSpec(
                data_container=BatchLine,
                description="One JSON object per line (application/x-ndjson)",
                media_type=NDJSON,
                generate_examples=False,
            ),
            **problems(
                *AUTHED, 413, 422, reasons={403: ("unknown_purpose", "purpose_not_allowed")}
            ),
        },
    )
    async def batch(
        self, request: Request[Any, Any, Any], data: JSONBody[BatchLookupRequest], vault: Vault
    ) -> Stream:
        kind, values = _identifiers(data)
        if data.contact is not None and data.contact.followup is not None:
            raise InvalidInput(  # one follow-up is for one customer: single lookups only
                "a follow-up cannot be used by a batch",
                {"contact.followup": "use a single lookup"},
            )
        client: ClientInfo = request.user
        await take_lookups(request, len(values))
        lines = bulk.resolve_batch(
            vault,
            actor_of(request),
            client.purposes,
            purpose_id=data.purpose,
            identifier_kind=kind,
            identifiers=values,
            fields=data.fields,
            contact=contact_spec(data.contact, request),
        )
        # The first chunk runs before the response starts, so a request the vault refuses
        # as a whole (bad input, purpose denied, storage down) is an ordinary problem+json.
        first = await lines.__anext__()
        return Stream(_chain(first, lines), media_type=NDJSON, status_code=200)

    @post(
        "/dry-run",
        opt=roles(Role.LOOKUP, Role.DPO),
        operation_id="lookupDryRun",
        summary="Audience dry run: how many of these subjects are reachable now, and why not",
        description=(
            "Give a purpose, optionally its channel, and exactly one identifier list (at most "
            "10,000). Counts the subjects the batch lookup would reveal data for and that hold "
            "the contact field the channel needs (`reachable`), and the others by reason. "
            "With `contact`, the reservations are rehearsed too (basket, calamity cool-down, "
            "the customers' own rules; one contact per subject) and rolled back. "
            "Answers for groups only: fewer distinct known subjects than `min_audience` "
            "(policy `dry_run_min_audience`, default 10) is a 403 `audience_too_small`, and "
            "a bucket with fewer members than that is not shown but counted in "
            "`suppressed` (`reachable` is null then). Reveals no contact data and decrypts "
            "nothing; audited as one event with the counts and one event per subject "
            "concerned (its id, never the identifier), committed before the answer."
        ),
        status_code=200,
        request_max_body_size=BULK_MAX_BODY_BYTES,
        responses=problems(
            *AUTHED,
            413,
            422,
            reasons={403: ("unknown_purpose", "purpose_not_allowed", "audience_too_small")},
        ),
    )
    async def dry_run(
        self, request: Request[Any, Any, Any], data: JSONBody[DryRunRequest], vault: Vault
    ) -> DryRunResponse:
        kind, values = _identifiers(data)
        client: ClientInfo = request.user
        result = await dry_run.dry_run(
            vault,
            actor_of(request),
            client.purposes,
            purpose_id=data.purpose,
            identifier_kind=kind,
            identifiers=values,
            channel=data.channel,
            contact=contact_spec(data.contact, None),
        )
        return DryRunResponse(
            total=result.total,
            reachable=result.reachable,
            unreachable=result.unreachable,
            suppressed=result.suppressed,
            min_audience=result.min_audience,
        )
