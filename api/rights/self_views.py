"""What the self-service API and the privacy centre's pages share: the caller's session and
identifiers, the OpenAPI declarations of self-service errors, and the subject's own data
as response bodies (consents, follow-ups, access log, requests, identity changes)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.datastructures import ResponseSpec

from api.client_address import client_address
from api.deps import Vault
from api.i18n import TEXTS, format_datetime
from api.openapi_docs import problems
from api.outreach.schemas import SelfFollowup
from api.rights.schemas import PurposeTitle
from api.rights.self_schemas import (
    LocalText,
    SelfAccess,
    SelfConsent,
    SelfIdentityChange,
    SelfRequest,
    SelfRestriction,
    SelfSessionStart,
    SelfSessionVerify,
)
from api.schemas import Problem
from vault.audit.events import Actor
from vault.context import VaultContext
from vault.errors import InvalidInput, NotFound, Unauthenticated
from vault.outreach import followups
from vault.rights import export, selfservice
from vault.rights import requests as dsar
from vault.rights.requests import RequestRecord
from vault.rights.selfservice import AccessEntry, ConsentView, SelfSession
from vault.subjects.identity import ChangeRecord, Restriction

#: `security` of operations that need the self-service session token.
SELF_SESSION: list[dict[str, list[str]]] = [{"SelfSession": []}]


SELF_CHANNEL = "self_service"


_SELF_DESCRIPTIONS = {
    401: "Missing, unknown, expired or ended self-service session (or a wrong code)",
    403: "Refused by a rule of the vault; nothing changed",
    429: "Too many codes requested for this address or from this client; see Retry-After",
}


ACCEPTED_DETAIL = (
    "If the address belongs to a customer, a code has been sent to the e-mail address we "
    "have on file. It is valid for a few minutes. While sign-in by code is locked after "
    "too many wrong codes, that mail carries a one-time sign-in link instead."
)


def self_problems(*codes: int) -> dict[int, ResponseSpec]:
    """Problem+json responses, with the self-service meaning of 401, 403 and 429."""
    out = problems(*(c for c in codes if c not in _SELF_DESCRIPTIONS))
    for code in codes:
        if code in _SELF_DESCRIPTIONS:
            out[code] = ResponseSpec(
                data_container=Problem,
                description=_SELF_DESCRIPTIONS[code],
                media_type="application/problem+json",
                generate_examples=False,
            )
    return dict(sorted(out.items()))


def request_id_of(request: Request[Any, Any, Any]) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The client's address behind trusted proxies (`api.client_address`)."""
    return client_address(request)


def identifier(data: SelfSessionStart | SelfSessionVerify) -> tuple[str, str]:
    given = [(k, getattr(data, k)) for k in selfservice.KINDS if getattr(data, k) is not None]
    if len(given) != 1:
        raise InvalidInput(
            "name exactly one address", {"identifier": "give exactly one of email, phone"}
        )
    return given[0]


def bearer_token(request: Request[Any, Any, Any]) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a self-service session token is required", "invalid_session")
    return token.strip()


def operation_of(request: Request[Any, Any, Any]) -> str:
    """The operation a request asked for, as named in audit events (never a value)."""
    name = getattr(request.route_handler, "operation_id", None)
    return name if isinstance(name, str) else request.route_handler.handler_name


async def provide_me(request: Request[Any, Any, Any], vault: Vault) -> str:
    """The subject id behind the request's self-service bearer token (or 401). Default
    deny: a session restricted by an unconfirmed change of the e-mail address gets a 403
    (`identity_change_unconfirmed`), audited; only the overview and sign-out take one."""
    return await selfservice.session_subject(
        vault,
        bearer_token(request),
        operation=operation_of(request),
        request_id=request_id_of(request),
    )


async def provide_session(request: Request[Any, Any, Any], vault: Vault) -> SelfSession:
    """The live session behind the bearer token, restricted or not (or 401)."""
    return await selfservice.session_info(vault, bearer_token(request))


def restriction_text(lang: str, restriction: Restriction) -> str:
    """Why contact data is hidden and actions are refused, and what ends it."""
    t = TEXTS[lang]
    if restriction.until is None:
        return t["pc_identity_restricted_objected"]
    when = format_datetime(restriction.until, lang, utc=True)
    return t["pc_identity_restricted_text"].format(until=when)


def restriction_json(restriction: Restriction | None) -> SelfRestriction | None:
    """Why the overview hides the contact data, with the customer-facing text (de, en)."""
    if restriction is None:
        return None
    return SelfRestriction(
        reason=restriction.reason,
        changed_at=restriction.changed_at,
        until=restriction.until,
        message=LocalText(
            de=restriction_text("de", restriction), en=restriction_text("en", restriction)
        ),
    )


def consent_json(c: ConsentView) -> SelfConsent:
    return SelfConsent(
        consent_id=c.id,
        purpose=c.purpose,
        title=PurposeTitle(de=c.title_de, en=c.title_en),
        basis=c.basis,
        status=c.status,
        touchpoint=c.touchpoint,
        method=c.method,
        given_at=c.given_at,
        expires_at=c.expires_at,
        withdrawn_at=c.withdrawn_at,
        withdrawable=c.withdrawable,
    )


def followup_json(vault: VaultContext, f: followups.Followup) -> SelfFollowup:
    purpose = vault.catalogue.get(f.purpose)
    return SelfFollowup(
        id=f.id,
        purpose=f.purpose,
        title=PurposeTitle(
            de=purpose.title("de") if purpose else f.purpose,
            en=purpose.title("en") if purpose else f.purpose,
        ),
        channel=f.channel,
        type=f.type,
        touchpoint=f.touchpoint,
        note=f.note,
        due_from=f.due_from,
        due_until=f.due_until,
        status=f.status,
        cancellable=f.cancellable,
    )


def access_label(lang: str, entry: AccessEntry) -> str:
    """What the access was, for the customer: its kind, naming the client, never a value."""
    return TEXTS[lang]["access_" + entry.kind].format(client=entry.system)


def access_outcome(lang: str, entry: AccessEntry) -> str:
    """The outcome in the kind's words where "released" would be wrong (an audience check
    released nothing: it counted the customer as reachable or not)."""
    t = TEXTS[lang]
    return t.get(f"decision_{entry.kind}_{entry.decision}") or t.get(
        "decision_" + entry.decision, entry.decision
    )


def access_json(a: AccessEntry) -> SelfAccess:
    return SelfAccess(
        at=a.at,
        client=a.client,
        purpose=a.purpose,
        title=PurposeTitle(de=a.title_de, en=a.title_en) if a.title_de and a.title_en else None,
        fields=a.fields,
        decision=a.decision,
        reason=a.reason,
        kind=a.kind,
        label=LocalText(de=access_label("de", a), en=access_label("en", a)),
    )


def request_json(r: RequestRecord) -> SelfRequest:
    return SelfRequest(
        request_id=r.id,
        type=r.type,
        status=r.status,
        channel=r.channel,
        received_at=r.received_at,
        due_at=r.due_at,
        extended_at=r.extended_at,
        extension_reason=r.extension_reason,
        verified_at=r.verified_at,
        completed_at=r.completed_at,
        outcome_reason=r.outcome_reason,
        overdue=bool(r.overdue),
    )


async def my_requests(vault: VaultContext, subject_id: str) -> list[RequestRecord]:
    return list(await dsar.list_requests(vault, subject_id=subject_id, limit=100))


async def my_request(vault: VaultContext, subject_id: str, request_id: str) -> RequestRecord:
    """One of the subject's own requests; someone else's is indistinguishable from none."""
    record = await dsar.get_request(vault, request_id)
    if record.subject_id != subject_id:
        raise NotFound("no such request")
    return record


async def create_my_request(
    vault: VaultContext,
    request: Request[Any, Any, Any],
    subject_id: str,
    type_: str,
    payload: dict[str, Any] | None,
) -> RequestRecord:
    """A request by the signed-in subject: identity is proven by the session, so it is
    created verified (access, portability, restriction, objection, erasure and consent
    withdrawal run at once; rectification goes to review)."""
    return await dsar.create_request(
        vault,
        selfservice.subject_actor(request_id_of(request)),
        subject_id=subject_id,
        type=type_,
        channel=SELF_CHANNEL,
        payload=payload,
        verified=True,
    )


async def my_export(
    vault: VaultContext, request: Request[Any, Any, Any], subject_id: str
) -> dict[str, Any]:
    return dict(
        await export.build_export(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id
        )
    )


def link_actor(request: Request[Any, Any, Any]) -> Actor:
    """Whoever holds the link mailed to the previous address (the old owner, presumably)."""
    return Actor("subject", "identity-notice-link", request_id_of(request))


def identity_change_json(records: list[ChangeRecord]) -> SelfIdentityChange:
    return SelfIdentityChange(
        status=records[0].status,
        fields=[r.kind for r in records],
        changed_at=records[0].changed_at,
        cooling_off_until=records[0].cooling_off_until,
    )
