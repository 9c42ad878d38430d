"""Contact preferences: channels, quiet times, caps."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect, Template

from api.deps import Vault
from api.i18n import TEXTS, pick_language
from api.outreach.preferences import channel_labels
from api.outreach.preferences import form_document as preference_form
from api.outreach.preferences import form_errors as preference_errors
from api.outreach.preferences import page_context as preference_page
from api.privacy.pages import PrivacyPages, render, require_session
from api.rights.self_views import (
    client_ip,
    request_id_of,
)
from vault.errors import (
    InvalidInput,
)
from vault.outreach import preference_changes
from vault.rights import selfservice

#: The privacy centre's cookies and CSRF secret (api/web/cookies.py).


class PrivacyPreferencePages(PrivacyPages):
    """Contact preferences: channels, quiet times, caps."""

    @get("/preferences", operation_id="privacyPreferences")
    async def preferences_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        subject_id = await require_session(request, vault)
        view = await preference_changes.get_preferences(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id
        )
        lang = pick_language(request)
        t = TEXTS[lang]
        saved = request.query_params.get("done") == "saved"
        return render(
            request,
            "privacy_preferences.html",
            "pc_pref_heading",
            zone=view.preferences.timezone if view.preferences else None,
            notice=t["pc_pref_saved"] if saved else None,
            errors=[],
            **preference_page(vault, view, None, lang),
        )

    @post("/preferences", operation_id="privacyPreferencesSave", status_code=303)
    async def preferences_save(
        self, request: Request[Any, Any, Any], vault: Vault
    ) -> Response[Any]:
        subject_id = await require_session(request, vault)
        lang = pick_language(request)
        actor = selfservice.subject_actor(request_id_of(request))
        doc = preference_form(await request.form(), vault.pressure_rules.channels)
        try:
            await preference_changes.set_preferences(
                vault,
                actor,
                subject_id,
                doc,
                source="self_service",
                evidence=preference_changes.self_service_evidence(
                    lang, ip=client_ip(request), ua=request.headers.get("user-agent")
                ),
            )
        except InvalidInput as exc:
            view = await preference_changes.get_preferences(vault, actor, subject_id)
            return render(
                request,
                "privacy_preferences.html",
                "pc_pref_heading",
                status=422,
                error=TEXTS[lang]["pc_pref_invalid"],
                errors=preference_errors(exc.errors, TEXTS[lang], channel_labels(vault, lang)),
                **preference_page(vault, view, doc, lang),
            )
        return Redirect(path=f"/privacy/preferences?lang={lang}&done=saved", status_code=303)
