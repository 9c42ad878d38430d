"""Giving a consent: one form per consent-based purpose of the catalogue, with the duration
the customer chooses (`vault.rights.selfservice.giving`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.response import Redirect

from api.deps import Vault
from api.i18n import TEXTS, format_number, pick_language
from api.privacy.pages import PrivacyPages, form_value, require_session, to_privacy
from api.rights.self_views import client_ip, request_id_of
from vault.errors import InvalidInput
from vault.rights import selfservice
from vault.subjects.decision import BasisStatus

#: A purpose with a consent in one of these states is not offered again.
_IN_FORCE = (BasisStatus.GRANTED, BasisStatus.PENDING_CONFIRMATION)


def duration_label(lang: str, days: int) -> str:
    """A duration as the customer reads it: the offered steps by name (api/i18n.py family
    `pc_give_days_`: "3 Monate", "1 year"), a purpose's own default as "400 Tage"."""
    t = TEXTS[lang]
    named = t.get(f"pc_give_days_{days}")
    return named or t["pc_give_days_n"].format(days=format_number(days, lang))


def offers(vault: Any, lang: str, view: Any) -> list[dict[str, Any]]:
    """The consent-based purposes the customer has no consent in force or awaiting
    confirmation for, each with its title, description and durations (longest last)."""
    held = {c.purpose for c in view.consents if c.status in _IN_FORCE}
    return [
        {
            "id": purpose.id,
            "title": purpose.title(lang),
            "description": purpose.description_de if lang == "de" else purpose.description_en,
            "double_opt_in": purpose.double_opt_in,
            "fields": purpose.fields,
            "durations": [
                (days, duration_label(lang, days)) for days in selfservice.durations(purpose)
            ],
        }
        for purpose in selfservice.offerable(vault)
        if purpose.id not in held
    ]


class PrivacyConsentPages(PrivacyPages):
    """The customer gives a consent; a double opt-in purpose mails its confirmation link."""

    @post("/consents", operation_id="privacyGiveConsent", status_code=303)
    async def give(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        subject_id = await require_session(request, vault)
        form = await request.form()
        days = form_value(form, "days", 4)
        if not days.isdigit():
            raise InvalidInput("duration not offered", {"days": "a number of days"})
        record = await selfservice.give_consent(
            vault,
            selfservice.subject_actor(request_id_of(request)),
            subject_id,
            form_value(form, "purpose", 100),
            int(days),
            language=pick_language(request),
            leave_out=[v for v in form.getall("leave_out", []) if isinstance(v, str)][:10],
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        pending = record.status == BasisStatus.PENDING_CONFIRMATION
        return to_privacy(request, "confirm_sent" if pending else "consented", "#consents")
