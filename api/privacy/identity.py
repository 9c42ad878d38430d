"""Confirming or objecting to a recent change of one's e-mail address or phone number."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Template

from api.deps import Vault
from api.i18n import N_, TEXTS, pick_language
from api.privacy.pages import PrivacyPages, fmt_for, message, render
from api.rights.self_views import (
    link_actor,
)
from vault.errors import (
    Conflict,
    NotFound,
)
from vault.rights import identity_objection
from vault.subjects import identity_links

#: The privacy centre's cookies and CSRF secret (api/web/cookies.py).


class PrivacyIdentityPages(PrivacyPages):
    """Confirming or objecting to a recent change of one's e-mail address or phone number."""

    @get("/identity/{token:str}", operation_id="privacyIdentityChange")
    async def identity_page(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        """The link in the notice to the previous address: what changed, and two buttons.
        Opening it changes nothing (mail scanners open links); the buttons post."""
        lang = pick_language(request)
        t = TEXTS[lang]
        try:
            notice = await identity_links.peek_notice(vault, token)
        except NotFound:
            return message(
                request, 404, N_("pc_identity_invalid_title"), t["pc_identity_invalid_text"]
            )
        what = t["pc_identity_what_" + "_".join(notice.kinds)]
        return render(
            request,
            "privacy_identity.html",
            "pc_identity_heading",
            intro=t["pc_identity_intro"].format(at=fmt_for(lang)(notice.changed_at), what=what),
            token=token,
        )

    @post("/identity/{token:str}/confirm", operation_id="privacyIdentityConfirm", status_code=200)
    async def identity_confirm(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        t = TEXTS[pick_language(request)]
        try:
            await identity_links.confirm_by_token(vault, link_actor(request), token)
        except NotFound:
            return message(
                request, 410, N_("pc_identity_invalid_title"), t["pc_identity_invalid_text"]
            )
        except Conflict:
            return message(request, 409, N_("pc_error_title"), t["pc_identity_conflict_text"])
        return message(
            request, 200, N_("pc_identity_confirmed_title"), t["pc_identity_confirmed_text"]
        )

    @post("/identity/{token:str}/object", operation_id="privacyIdentityObject", status_code=200)
    async def identity_object(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        t = TEXTS[pick_language(request)]
        try:
            await identity_objection.object_by_token(vault, link_actor(request), token)
        except NotFound:
            return message(
                request, 410, N_("pc_identity_invalid_title"), t["pc_identity_invalid_text"]
            )
        return message(
            request, 200, N_("pc_identity_objected_title"), t["pc_identity_objected_text"]
        )
