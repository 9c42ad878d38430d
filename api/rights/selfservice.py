"""The privacy centre as JSON, for apps: sign in with a mailed code, see and manage my data.

Not behind the API-key middleware: the subject authenticates with the bearer token that
`POST /self/v1/session/verify` returns (security scheme `SelfSession` in the document).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from api.auth import public
from api.deps import Vault
from api.i18n import pick_language
from api.openapi_docs import PUBLIC
from api.outreach.schemas import PreferencesIn, PreferencesOut, SelfFollowup, SelfFollowupList
from api.rights.self_schemas import (
    IdentityTokenIn,
    SelfConsent,
    SelfContact,
    SelfIdentityChange,
    SelfOverview,
    SelfRequest,
    SelfRequestCreate,
    SelfSessionAccepted,
    SelfSessionStart,
    SelfSessionToken,
    SelfSessionVerify,
)
from api.rights.self_views import (
    ACCEPTED_DETAIL,
    SELF_SESSION,
    access_json,
    bearer_token,
    client_ip,
    consent_json,
    create_my_request,
    followup_json,
    identifier,
    identity_change_json,
    link_actor,
    my_export,
    my_request,
    my_requests,
    provide_me,
    provide_session,
    request_id_of,
    request_json,
    restriction_json,
    self_problems,
)
from api.schemas import Uuid, uuid_path
from vault.outreach import followup_changes, followup_reads, preference_changes
from vault.rights import identity_objection, selfservice
from vault.rights.selfservice import SelfSession
from vault.subjects import identity_links

Me = NamedDependency[str]
Session = NamedDependency[SelfSession]


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
            "is mailed to the e-mail address the vault has on file (also for `phone`); a "
            "customer known only by a phone number gets it by SMS. The answer is the same "
            "either way. A code is never sent late: when the mail server or (for `phone`) "
            "the SMS gateway cannot take it now, the answer is 503 and nothing is stored. "
            "Limited per address and per client IP (429). "
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
            token=session.token,
            token_type="Bearer",  # noqa: S106 - the OAuth 2.0 token type, not a secret
            expires_at=session.expires_at,
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

        view = await preference_changes.get_preferences(
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

        view = await preference_changes.set_preferences(
            vault,
            selfservice.subject_actor(request_id_of(request)),
            me,
            preferences_raw(data),
            source="self_service",
            evidence=preference_changes.self_service_evidence(
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
        items = await followup_reads.for_subject(
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
        cancelled = await followup_changes.cancel_by_subject(
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
    async def export(self, request: Request[Any, Any, Any], vault: Vault, me: Me) -> dict[str, Any]:
        return await my_export(vault, request, me)


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
        records = await identity_links.confirm_by_token(vault, link_actor(request), data.token)
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
