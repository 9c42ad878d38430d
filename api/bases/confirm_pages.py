"""Customer-facing web pages: the double opt-in confirmation and a small landing page."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter
from litestar.response import Template

from api.auth import actor_of, public
from api.bases.consents import consent_out
from api.bases.schemas import ConfirmRequest, ConsentOut
from api.deps import Vault
from api.i18n import N_, TEXTS, pick_language
from api.openapi_docs import PUBLIC, problems
from vault.audit.events import Actor
from vault.bases import consents
from vault.errors import Conflict, NotFound, Unavailable
from vault.subjects.decision import BasisStatus

Token = Parameter(description="Confirmation token from the mailed link", max_length=100)


def _subject_actor(request: Request[Any, Any, Any]) -> Actor:
    return Actor("subject", "confirmation-link", request.scope.get("state", {}).get("request_id"))


#: The title and text of each message page.
_MESSAGES = {
    "invalid": (N_("invalid_title"), N_("invalid_text")),
    "unavailable": (N_("unavailable_title"), N_("unavailable_text")),
    "confirmed": (N_("confirmed_title"), N_("confirmed_text")),
}


def _message(lang: str, key: str, status: int = 200) -> Template:
    t = TEXTS[lang]
    title, text = _MESSAGES[key]
    return Template(
        template_name="message.html",
        context={
            "lang": lang,
            "t": t,
            "title": t[title],
            "heading": t[title],
            "text": t[text],
        },
        status_code=status,
    )


class PageController(Controller):
    tags = ["pages"]
    opt = public()
    include_in_schema = False

    @get("/", operation_id="home")
    async def home(self, request: Request[Any, Any, Any]) -> Template:
        lang = pick_language(request)
        return Template(
            template_name="message.html",
            context={
                "lang": lang,
                "t": TEXTS[lang],
                "title": TEXTS[lang]["home_title"],
                "heading": TEXTS[lang]["home_title"],
                "text": TEXTS[lang]["home_text"],
                "links": [
                    (f"/privacy?lang={lang}", TEXTS[lang]["home_link_privacy"]),
                    (f"/dpo?lang={lang}", TEXTS[lang]["home_link_dpo"]),
                    ("/schema/swagger", TEXTS[lang]["home_link_api"]),
                ],
            },
        )

    @get("/confirm/{token:str}", operation_id="confirmPage")
    async def confirm_page(
        self, request: Request[Any, Any, Any], vault: Vault, token: str = Token
    ) -> Template:
        lang = pick_language(request)
        try:
            purpose_id, status = await consents.peek_confirmation(vault, token)
        except NotFound:
            return _message(lang, "invalid", 404)
        except Unavailable:
            return _message(lang, "unavailable", 503)
        if status is not BasisStatus.PENDING_CONFIRMATION:
            return _message(lang, "invalid", 410)
        purpose = vault.catalogue.get(purpose_id)
        t = TEXTS[lang]
        return Template(
            template_name="confirm.html",
            context={
                "lang": lang,
                "t": t,
                "title": t["confirm_title"],
                "purpose_title": purpose.title(lang) if purpose else purpose_id,
                "token": token,
            },
        )

    @post("/confirm/{token:str}", operation_id="confirmFromPage", status_code=200)
    async def confirm_from_page(
        self, request: Request[Any, Any, Any], vault: Vault, token: str = Token
    ) -> Template:
        lang = pick_language(request)
        try:
            await consents.confirm(vault, token, _subject_actor(request))
        except (NotFound, Conflict):
            return _message(lang, "invalid", 410)
        except Unavailable:
            return _message(lang, "unavailable", 503)
        return _message(lang, "confirmed")


class ConfirmController(Controller):
    path = "/v1/consents/confirm"
    tags = ["consents"]
    opt = public()

    @post(
        "/",
        operation_id="confirmConsent",
        summary="Confirm a double opt-in consent with the token from the mailed link",
        status_code=200,
        security=PUBLIC,
        responses=problems(400, 404, 409, 413, 503),
    )
    async def confirm(
        self, request: Request[Any, Any, Any], data: JSONBody[ConfirmRequest], vault: Vault
    ) -> ConsentOut:
        record = await consents.confirm(vault, data.token, _subject_actor(request))
        return consent_out(record)


__all__ = ["ConfirmController", "PageController", "actor_of"]
