"""The overview of one's data and consents, requests, follow-ups and the export."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.deps import Vault
from api.export_view import render_html
from api.i18n import TEXTS, pick_language, text_for
from api.privacy.giving import offers as consent_offers
from api.privacy.pages import (
    CONTACT_FIELDS,
    DONE_NOTICES,
    FORM_REQUEST_TYPES,
    SESSION_COOKIE,
    PrivacyPages,
    clear_session_cookie,
    form_value,
    rectification_payload,
    render,
    require_session,
    signed_in,
    signin_page,
    to_privacy,
    touchpoint_name,
    valid_uuid,
)
from api.rights.self_views import (
    access_label,
    access_outcome,
    create_my_request,
    my_export,
    my_requests,
    request_id_of,
    restriction_text,
)
from vault.errors import (
    InvalidInput,
    NotFound,
)
from vault.outreach import followup_changes, followup_reads, history, preferences
from vault.rights import selfservice


class Objectable(msgspec.Struct, frozen=True):
    id: str
    title: str


def objectable(view: selfservice.SelfView, lang: str) -> list[Objectable]:
    """The purposes the customer can object to under Art. 21(1): those processed on a
    legitimate interest in force now (one entry per purpose)."""
    seen: dict[str, Objectable] = {}
    for c in view.consents:
        if c.basis == "legitimate_interest" and c.status == "active" and c.purpose not in seen:
            seen[c.purpose] = Objectable(c.purpose, c.title(lang))
    return list(seen.values())


def objection_payload(form: Any) -> dict[str, Any] | None:
    """The payload of an Art. 21(1) objection form: the purposes ticked (None: none) and
    the grounds relating to the customer's particular situation, if written."""
    purposes = [v for v in form.getall("purposes", []) if isinstance(v, str)][:50]
    if not purposes:
        return None
    payload: dict[str, Any] = {"purposes": purposes}
    # A browser sends a textarea's line breaks as CRLF; the vault takes LF only.
    grounds = form_value(form, "grounds", 1000).replace("\r\n", "\n").replace("\r", "\n")
    if grounds:
        payload["grounds"] = grounds
    return payload


class PrivacyOverviewPages(PrivacyPages):
    """The overview of one's data and consents, requests, follow-ups and the export."""

    @get("/", operation_id="privacyCentre")
    async def overview(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        lang = pick_language(request)
        t = TEXTS[lang]
        done = request.query_params.get("done")
        notice = t[f"done_{done}"] if done in DONE_NOTICES else None
        session = await signed_in(request, vault)
        if session is None:
            cookies = (
                [clear_session_cookie(request)] if request.cookies.get(SESSION_COOKIE) else None
            )
            return signin_page(request, notice=notice, cookies=cookies)
        view = await selfservice.my_data(
            vault,
            selfservice.subject_actor(request_id_of(request)),
            session.subject_id,
            restriction=session.restriction,
        )
        records = [] if view.restriction else await my_requests(vault, session.subject_id)
        zone = await preferences.display_zone(vault, session.subject_id)
        restricted = restriction_text(lang, view.restriction) if view.restriction else None
        error = {
            "empty": t["pc_rectify_empty"],
            "no_purpose": t["pc_object_li_empty"],
        }.get(request.query_params.get("error") or "")
        return render(
            request,
            "privacy_overview.html",
            "pc_title",
            view=view,
            requests=records,
            fields=CONTACT_FIELDS,
            notice=notice,
            error=error,
            restricted=restricted,
            session_minutes=vault.settings.session_idle_minutes,
            zone=zone,
            field_names=lambda names: ", ".join(text_for(lang, "field_", n) for n in names),
            offers=[] if view.restriction else consent_offers(vault, lang, view),
            objectable=[] if view.restriction else objectable(view, lang),
            touchpoint_name=lambda touchpoint_id: touchpoint_name(vault, lang, touchpoint_id),
            access_label=lambda entry: access_label(lang, entry),
            access_outcome=lambda entry: access_outcome(lang, entry),
        )

    @post("/consents/{consent_id:str}/withdraw", operation_id="privacyWithdraw", status_code=303)
    async def withdraw(
        self, request: Request[Any, Any, Any], vault: Vault, consent_id: FromPath[str]
    ) -> Redirect:
        subject_id = await require_session(request, vault)
        if not valid_uuid(consent_id):
            raise NotFound("no such consent")
        await selfservice.withdraw_consent(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id, consent_id
        )
        return to_privacy(request, "withdrawn", "#consents")

    @get("/followups", operation_id="privacyFollowups")
    async def followups_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """My agreed follow-ups (missed ones are marked, open ones can be cancelled) and my
        contact history: who contacted me, how and why."""
        subject_id = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        actor = selfservice.subject_actor(request_id_of(request))
        items = await followup_reads.for_subject(vault, actor, subject_id)
        contacts_made = await history.for_subject(vault, actor, subject_id)

        def purpose_title(purpose_id: str) -> str:
            purpose = vault.catalogue.get(purpose_id)
            return purpose.title(lang) if purpose else purpose_id

        def brand_name(brand_id: str) -> str:
            brand = vault.pressure_rules.brands.get(brand_id)
            if brand is None:
                return brand_id
            return brand.name_de if lang == "de" else brand.name_en

        def channel_name(channel: str) -> str:
            """A declared channel's name from the rules, a built-in one's from the UI."""
            declared = vault.pressure_rules.channel_name(channel, lang)
            return declared or text_for(lang, "fu_channel_", channel)

        done = request.query_params.get("done")
        return render(
            request,
            "privacy_followups.html",
            "pc_fu_heading",
            zone=await preferences.display_zone(vault, subject_id),
            items=items,
            contacts_made=contacts_made,
            brand_name=brand_name,
            channel_name=channel_name,
            purpose_title=purpose_title,
            touchpoint_name=lambda touchpoint_id: touchpoint_name(vault, lang, touchpoint_id),
            notice=t["done_followup_cancelled"] if done == "cancelled" else None,
        )

    @post(
        "/followups/{followup_id:str}/cancel",
        operation_id="privacyCancelFollowup",
        status_code=303,
    )
    async def cancel_followup(
        self, request: Request[Any, Any, Any], vault: Vault, followup_id: FromPath[str]
    ) -> Redirect:
        subject_id = await require_session(request, vault)
        if not valid_uuid(followup_id):
            raise NotFound("no such follow-up")
        await followup_changes.cancel_by_subject(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id, followup_id
        )
        lang = pick_language(request)
        return Redirect(path=f"/privacy/followups?lang={lang}&done=cancelled", status_code=303)

    @get("/erase", operation_id="privacyEraseConfirm")
    async def erase_confirm(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        await require_session(request, vault)
        return render(request, "privacy_erase.html", "pc_erase_confirm_heading")

    @post("/requests", operation_id="privacyRequest", status_code=303)
    async def make_request(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        subject_id = await require_session(request, vault)
        form = await request.form()
        type_ = form_value(form, "type", 40)
        if type_ not in FORM_REQUEST_TYPES:
            raise InvalidInput("unknown request type", {"type": "is not offered here"})
        payload: dict[str, Any] | None = None
        if type_ == "erasure" and form_value(form, "confirm", 5) != "yes":
            return render(request, "privacy_erase.html", "pc_erase_confirm_heading", status=200)
        if type_ == "rectification":
            payload = rectification_payload(form)
            if not payload:
                lang = pick_language(request)
                return Redirect(path=f"/privacy?lang={lang}&error=empty#rights", status_code=303)
        if type_ == "legitimate_interest_objection":
            payload = objection_payload(form)
            if payload is None:
                lang = pick_language(request)
                return Redirect(
                    path=f"/privacy?lang={lang}&error=no_purpose#object-li", status_code=303
                )
        await create_my_request(vault, request, subject_id, type_, payload)
        if type_ == "erasure":
            token = request.cookies.get(SESSION_COOKIE)
            if token:
                await selfservice.end_session(vault, token, request_id_of(request))
            return to_privacy(request, "erased", cookies=[clear_session_cookie(request)])
        return to_privacy(request, "requested", "#requests")

    @get("/export", operation_id="privacyExportPage")
    async def export_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        subject_id = await require_session(request, vault)
        document = msgspec.to_builtins(await my_export(vault, request, subject_id))
        return render(
            request,
            "privacy_export.html",
            "pc_export_heading_full",
            zone=await preferences.display_zone(vault, subject_id),
            export=document,
            rendered=render_html(document, pick_language(request), vault.pressure_rules),
        )

    @get("/export.json", operation_id="privacyExportDownload")
    async def export_download(
        self, request: Request[Any, Any, Any], vault: Vault
    ) -> Response[bytes]:
        subject_id = await require_session(request, vault)
        document = await my_export(vault, request, subject_id)
        return Response(
            content=msgspec.json.format(msgspec.json.encode(document), indent=2),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="tresor-export.json"'},
        )
