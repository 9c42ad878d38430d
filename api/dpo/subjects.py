"""Finding a subject by e-mail, phone or customer number, the subject's overview, its
audited export, and lifting a restriction.

The search form posts (the value never appears in a URL, a log line or the page answered);
the vault looks the value up through the blind index and records the search with the kind
of identifier only (`vault.rights.subject_finder`). The overview shows ids, bases, requests
and the access history, never contact values: those are in the Art. 15 export, which the
DPO opens on purpose and which is audited (`dpo:export:read`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, form_text, page
from api.dpo.session import UUID_RE, DpoSession, require_session
from api.export_view import render_export_html
from api.i18n import N_, TEXTS, pick_language
from vault.errors import Conflict, InvalidInput, NotFound
from vault.rights import export
from vault.rights.restriction import lift_restriction
from vault.rights.subject_finder import KINDS, find_subject, subject_overview

#: Notices shown after a redirect back to the overview (`?done=`).
_DONE = {"lifted": N_("dpo_subject_lifted"), "lifted_letter": N_("dpo_subject_lifted_letter")}


def _subject_id(value: str) -> str:
    if not UUID_RE.match(value):
        raise NotFound("no such subject")
    return value


class DpoSubjectPages(DpoPages):
    """Subject search, overview, export and lifting a restriction."""

    @get("/subjects", operation_id="dpoSubjects")
    async def search_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        return _search(request, session)

    @post("/subjects/search", operation_id="dpoSubjectSearch")
    async def search(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect | Template:
        """Look the identifier up; 303 to the subject, or the form again saying none was
        found (404) or what is wrong with the input (422), without repeating the value."""
        session = await require_session(request, vault)
        form = await request.form()
        kind = form_text(form.get("kind"), 20)
        value = form_text(form.get("value"), 320)
        lang = pick_language(request)
        t = TEXTS[lang]
        try:
            found = await find_subject(vault, dpo_actor(request, session), kind, value)
        except InvalidInput as exc:
            return _search(
                request,
                session,
                kind=kind,
                status=422,
                error=t["dpo_subject_search_invalid"],
                error_fields=sorted(exc.errors.items()),
            )
        if found is None:
            return _search(request, session, kind=kind, status=404, error=t["dpo_subject_none"])
        return Redirect(path=f"/dpo/subjects/{found}?lang={lang}", status_code=303)

    @get("/subjects/{subject_id:str}", operation_id="dpoSubject")
    async def subject_page(
        self, request: Request[Any, Any, Any], vault: Vault, subject_id: FromPath[str]
    ) -> Template:
        """Status, bases, requests and access history; audited (`dpo:subject:read`)."""
        session = await require_session(request, vault)
        done = request.query_params.get("done")
        t = TEXTS[pick_language(request)]
        notice = t[_DONE[done]] if done in _DONE else None
        return await _overview(request, vault, session, _subject_id(subject_id), notice=notice)

    @get("/subjects/{subject_id:str}/export", operation_id="dpoSubjectExport")
    async def export_page(
        self, request: Request[Any, Any, Any], vault: Vault, subject_id: FromPath[str]
    ) -> Response[str]:
        """The subject's Art. 15 export with its contact data, as the API's HTML export;
        audited (`dpo:export:read`) by the vault before it is shown."""
        session = await require_session(request, vault)
        doc = await export.build_export(vault, dpo_actor(request, session), _subject_id(subject_id))
        html = render_export_html(doc, pick_language(request), vault.pressure_rules)
        return Response(html, media_type=MediaType.HTML)

    @post("/subjects/{subject_id:str}/lift-restriction", operation_id="dpoLiftRestriction")
    async def lift(
        self, request: Request[Any, Any, Any], vault: Vault, subject_id: FromPath[str]
    ) -> Redirect | Template:
        """End the restriction (Art. 18(3)) through the vault function the API calls; the
        customer is told by e-mail, or the notice says to write a letter."""
        session = await require_session(request, vault)
        sid = _subject_id(subject_id)
        form = await request.form()
        reason = form_text(form.get("reason"), 2000)
        lang = pick_language(request)
        t = TEXTS[lang]
        try:
            mailed = await lift_restriction(vault, dpo_actor(request, session), sid, reason)
        except (Conflict, InvalidInput) as exc:
            status = 409 if isinstance(exc, Conflict) else 422
            fields = sorted(exc.errors.items()) if isinstance(exc, InvalidInput) else []
            return await _overview(
                request,
                vault,
                session,
                sid,
                status=status,
                error=t[f"dpo_req_refused_{status}"].format(reason=str(exc)),
                error_fields=fields,
            )
        query = urlencode({"lang": lang, "done": "lifted" if mailed else "lifted_letter"})
        return Redirect(path=f"/dpo/subjects/{sid}?{query}", status_code=303)


def _search(
    request: Request[Any, Any, Any],
    session: DpoSession,
    *,
    kind: str = "email",
    status: int = 200,
    **context: Any,
) -> Template:
    return page(
        request,
        "dpo_subjects.html",
        "dpo_subjects_heading",
        session=session,
        section="subjects",
        status=status,
        kinds=KINDS,
        kind=kind if kind in KINDS else "email",
        **context,
    )


async def _overview(
    request: Request[Any, Any, Any],
    vault: Vault,
    session: DpoSession,
    subject_id: str,
    *,
    status: int = 200,
    **context: Any,
) -> Template:
    overview = await subject_overview(vault, dpo_actor(request, session), subject_id)
    lang = pick_language(request)

    def purpose_title(purpose_id: str) -> str:
        purpose = vault.catalogue.get(purpose_id)
        return purpose.title(lang) if purpose else purpose_id

    return page(
        request,
        "dpo_subject.html",
        "dpo_subject_heading",
        session=session,
        section="subjects",
        status=status,
        s=overview,
        purpose_title=purpose_title,
        **context,
    )
