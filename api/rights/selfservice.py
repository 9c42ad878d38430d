"""The privacy centre as JSON, for apps: sign in with a mailed code, see and manage my data.

Not behind the API-key middleware: the subject authenticates with the bearer token that
`POST /self/v1/session/verify` returns (security scheme `SelfSession` in the document).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from api.auth import public
from api.deps import Vault
from api.i18n import TEXTS, format_datetime, pick_language
from api.openapi_docs import PUBLIC, problems
from api.outreach.schemas import PreferencesIn, PreferencesOut, SelfFollowup, SelfFollowupList
from api.rights.schemas import (
    IdentityTokenIn,
    LocalText,
    PurposeTitle,
    SelfAccess,
    SelfConsent,
    SelfContact,
    SelfIdentityChange,
    SelfOverview,
    SelfRequest,
    SelfRequestCreate,
    SelfRestriction,
    SelfSessionAccepted,
    SelfSessionStart,
    SelfSessionToken,
    SelfSessionVerify,
)
from api.schemas import Problem, Uuid, uuid_path
from vault.rights import export
from vault.outreach import followups
from vault.rights import identity_objection
from vault.subjects import identity
from vault.outreach import preferences
from vault.rights import selfservice
from vault.rights import requests as dsar
from vault.audit.events import Actor
from vault.context import VaultContext
from vault.errors import InvalidInput, NotFound, Unauthenticated
from vault.subjects.identity import ChangeRecord, Restriction
from vault.rights.requests import RequestRecord
from vault.rights.selfservice import AccessEntry, ConsentView, SelfSession

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
    return request.client.host if request.client else "unknown"


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


Me = NamedDependency[str]
Session = NamedDependency[SelfSession]


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
    return TEXTS[lang]["access_" + entry.kind].format(client=entry.client)


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


class SelfSessionController(Controller):
    path = "/self/v1/session"
    tags = ["self-service"]
    opt = public()

    @post(
        "/",
        operation_id="selfStartSession",
        summary="Ask for a one-time sign-in code (always 202, whether or not the address exists)",
        description=(
            "Give exactly one of `email` or `phone`. If a customer has that address, a code "
            "is mailed to the e-mail address the vault has on file (also for `phone`). The "
            "answer is the same either way. Limited per address and per client IP (429). "
            "While the customer's sign-in by code is locked after too many wrong codes, the "
            "mail carries a one-time sign-in link to the privacy centre instead of a code."
        ),
        status_code=202,
        security=PUBLIC,
        responses=self_problems(400, 413, 422, 429, 503),
    )
    async def start(
        self, request: Request[Any, Any, Any], data: JSONBody[SelfSessionStart], vault: Vault
    ) -> SelfSessionAccepted:
        kind, value = identifier(data)
        await selfservice.start_challenge(
            vault,
            kind=kind,
            value=value,
            client_ip=client_ip(request),
            request_id=request_id_of(request),
        )
        return SelfSessionAccepted(status="accepted", detail=ACCEPTED_DETAIL)

    @post(
        "/verify",
        operation_id="selfVerifySession",
        summary="Exchange the mailed code for a short-lived session token",
        description=(
            "Send the address from the start call and the code. A code allows a few "
            "attempts and expires after minutes; a wrong, expired or unknown code all get "
            "the same 401. Use the token as `Authorization: Bearer <token>` on /self/v1."
        ),
        status_code=200,
        security=PUBLIC,
        responses=self_problems(400, 401, 413, 422, 503),
    )
    async def verify(
        self, request: Request[Any, Any, Any], data: JSONBody[SelfSessionVerify], vault: Vault
    ) -> SelfSessionToken:
        kind, value = identifier(data)
        session = await selfservice.verify_code(
            vault,
            kind=kind,
            value=value,
            code=data.code,
            client_ip=client_ip(request),
            request_id=request_id_of(request),
        )
        return SelfSessionToken(
            token=session.token, token_type="Bearer", expires_at=session.expires_at
        )

    @delete(
        "/",
        operation_id="selfEndSession",
        summary="Sign out: end the session of the bearer token",
        status_code=204,
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 503),
    )
    async def end(self, request: Request[Any, Any, Any], vault: Vault) -> None:
        token = bearer_token(request)
        await selfservice.session_info(vault, token)  # a restricted session may sign out
        await selfservice.end_session(vault, token, request_id_of(request))


class SelfServiceController(Controller):
    path = "/self/v1"
    tags = ["self-service"]
    opt = public()
    dependencies = {"me": Provide(provide_me), "session": Provide(provide_session)}

    @get(
        "/me",
        operation_id="selfOverview",
        summary="My contact data, my consents, who accessed my data, and my requests",
        description=(
            "Reading one's own data is audited like any other access. A session opened "
            "through an e-mail address whose change is not confirmed yet gets `restriction` "
            "and only the consents: no contact data, access log or requests."
        ),
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 500, 503),
    )
    async def me_(
        self, request: Request[Any, Any, Any], vault: Vault, session: Session
    ) -> SelfOverview:
        view = await selfservice.my_data(
            vault,
            selfservice.subject_actor(request_id_of(request)),
            session.subject_id,
            restriction=session.restriction,
        )
        records = [] if view.restriction else await my_requests(vault, session.subject_id)
        return SelfOverview(
            subject_id=view.subject_id,
            status=view.status,
            contact=SelfContact(**view.contact),
            consents=[consent_json(c) for c in view.consents],
            access_log=[access_json(a) for a in view.access_log],
            requests=[request_json(r) for r in records],
            restriction=restriction_json(view.restriction),
        )

    @post(
        "/consents/{consent_id:str}/withdraw",
        operation_id="selfWithdrawConsent",
        summary="Withdraw one of my consents, effective at once",
        status_code=200,
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 409, 503),
    )
    async def withdraw(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        me: Me,
        consent_id: Uuid = uuid_path("The consent's id"),
    ) -> SelfConsent:
        await selfservice.withdraw_consent(
            vault, selfservice.subject_actor(request_id_of(request)), me, consent_id
        )
        view = await selfservice.my_data(
            vault, selfservice.subject_actor(request_id_of(request)), me
        )
        return next(consent_json(c) for c in view.consents if c.id == consent_id)

    @post(
        "/requests",
        operation_id="selfCreateRequest",
        summary="Make a data-subject request (access, export, rectification, restriction, "
        "objection, erasure, consent withdrawal)",
        description=(
            "The session proves identity, so the request is verified at once; all types "
            "but rectification are carried out immediately, rectification goes to review."
        ),
        status_code=201,
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def create_request(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SelfRequestCreate],
        vault: Vault,
        me: Me,
    ) -> SelfRequest:
        record = await create_my_request(vault, request, me, data.type, data.payload)
        return request_json(record)

    @get(
        "/requests/{request_id:str}",
        operation_id="selfGetRequest",
        summary="Status and deadline of one of my requests",
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 503),
    )
    async def get_request(
        self,
        vault: Vault,
        me: Me,
        request_id: Uuid = uuid_path("The request's id"),
    ) -> SelfRequest:
        return request_json(await my_request(vault, me, request_id))

    @get(
        "/preferences",
        operation_id="selfGetPreferences",
        summary="My contact preferences and their history",
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 503),
    )
    async def get_preferences(
        self, request: Request[Any, Any, Any], vault: Vault, me: Me
    ) -> PreferencesOut:
        from api.outreach.preferences import preferences_out

        view = await preferences.get_preferences(
            vault, selfservice.subject_actor(request_id_of(request)), me
        )
        return preferences_out(vault, view)

    @put(
        "/preferences",
        operation_id="selfSetPreferences",
        summary="Set my contact preferences: preferred channels, quiet hours and days, own cap",
        description=(
            "Replaces the preferences as a whole. Quiet times are in the given IANA time "
            "zone; `monthly_cap_points` can only lower the company basket (a higher value is "
            "rejected with 422 and nothing changes). Every change is kept and audited."
        ),
        status_code=200,
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def set_preferences(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PreferencesIn],
        vault: Vault,
        me: Me,
    ) -> PreferencesOut:
        from api.outreach.preferences import preferences_out, preferences_raw

        view = await preferences.set_preferences(
            vault,
            selfservice.subject_actor(request_id_of(request)),
            me,
            preferences_raw(data),
            source="self_service",
            evidence=preferences.self_service_evidence(
                pick_language(request),
                method="app",
                ip=client_ip(request),
                ua=request.headers.get("user-agent"),
            ),
        )
        return preferences_out(vault, view)

    @get(
        "/followups",
        operation_id="selfListFollowups",
        summary="My agreed follow-ups (call-backs and the like), with their status",
        description="`missed` means the window passed unused; open ones can be cancelled.",
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 503),
    )
    async def list_followups(
        self, request: Request[Any, Any, Any], vault: Vault, me: Me
    ) -> SelfFollowupList:
        items = await followups.for_subject(
            vault, selfservice.subject_actor(request_id_of(request)), me
        )
        return SelfFollowupList(items=[followup_json(vault, f) for f in items])

    @post(
        "/followups/{followup_id:str}/cancel",
        operation_id="selfCancelFollowup",
        summary="Cancel one of my open follow-ups; it can no longer be used",
        status_code=200,
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 409, 503),
    )
    async def cancel_followup(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        me: Me,
        followup_id: Uuid = uuid_path("The follow-up's id"),
    ) -> SelfFollowup:
        cancelled = await followups.cancel_by_subject(
            vault, selfservice.subject_actor(request_id_of(request)), me, followup_id
        )
        return followup_json(vault, cancelled)

    @get(
        "/export",
        operation_id="selfExport",
        summary="My data as one machine-readable document (Art. 15, Art. 20)",
        security=SELF_SESSION,
        responses=self_problems(400, 401, 403, 404, 500, 503),
    )
    async def export(
        self, request: Request[Any, Any, Any], vault: Vault, me: Me
    ) -> dict[str, Any]:
        return await my_export(vault, request, me)


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


class SelfIdentityController(Controller):
    """The link in the notice mailed to the previous address after a change of the e-mail
    address or phone number, for apps (the page is /privacy/identity/{token})."""

    path = "/self/v1/identity-changes"
    tags = ["self-service"]
    opt = public()

    @post(
        "/confirm",
        operation_id="selfConfirmIdentityChange",
        summary="Confirm a change of my e-mail address or phone number (token from the notice)",
        description=(
            "Sessions through the new e-mail address are then no longer restricted. Refused "
            "(409) while an earlier change of the address is still open: a DPO decides then."
        ),
        status_code=200,
        security=PUBLIC,
        responses=self_problems(400, 404, 409, 413, 503),
    )
    async def confirm(
        self, request: Request[Any, Any, Any], data: JSONBody[IdentityTokenIn], vault: Vault
    ) -> SelfIdentityChange:
        records = await identity.confirm_by_token(vault, link_actor(request), data.token)
        return identity_change_json(records)

    @post(
        "/object",
        operation_id="selfObjectIdentityChange",
        summary="This was not me: object to a change of my e-mail address or phone number",
        description=(
            "Ends every privacy-centre session of the customer, keeps sessions through the "
            "disputed address restricted until a DPO decides, and opens a restriction "
            "request (Art. 18(1)(a) GDPR, accuracy contested) in the DPO's queue."
        ),
        status_code=200,
        security=PUBLIC,
        responses=self_problems(400, 404, 409, 413, 503),
    )
    async def object_(
        self, request: Request[Any, Any, Any], data: JSONBody[IdentityTokenIn], vault: Vault
    ) -> SelfIdentityChange:
        records = await identity_objection.object_by_token(vault, link_actor(request), data.token)
        return identity_change_json(records)
