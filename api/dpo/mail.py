"""The console's mail page: the outbox's pending and failed mails (linked from the counts
on the request queue), and the DPO's two actions on one, each a CSRF-checked form with a
reason: send a failed mail again, or discard a mail.

The page shows what `vault.mail_outbox_review` returns: the kind of mail, the subject id
(a link to the subject's page), times, attempts and the class of the last failure, never
an address or a body. The listing and each action are audited by the vault.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, form_text, page
from api.dpo.session import UUID_RE, DpoSession, require_session
from api.i18n import N_, TEXTS, pick_language
from vault.errors import Conflict, InvalidInput, NotFound
from vault.mail_outbox_review import LISTED, discard, list_mails, retry

#: The kinds of mail by their template name, as the page names them.
KIND_TEXTS = {
    "signin": N_("dpo_mail_kind_signin"),
    "doi_confirmation": N_("dpo_mail_kind_doi_confirmation"),
    "request_extension": N_("dpo_mail_kind_request_extension"),
    "restriction_lifted": N_("dpo_mail_kind_restriction_lifted"),
    "identity_notice": N_("dpo_mail_kind_identity_notice"),
}
#: The actions' notices after the redirect back to the list (`?done=`).
_DONE = {"retry": N_("dpo_mail_done_retry"), "discard": N_("dpo_mail_done_discard")}
_ACTIONS = {"retry": retry, "discard": discard}


def _mail_id(value: str) -> str:
    if not UUID_RE.match(value):
        raise NotFound("no such mail")
    return value


class DpoMailPages(DpoPages):
    """The outbox's pending and failed mails, and retrying or discarding one."""

    @get("/mail", operation_id="dpoMail")
    async def mail_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """Pending and failed mails (or one status, `?status=`), newest first; audited."""
        session = await require_session(request, vault)
        done = request.query_params.get("done")
        t = TEXTS[pick_language(request)]
        notice = t[_DONE[done]] if done in _DONE else None
        return await _render(request, vault, session, notice=notice)

    @post("/mail/{mail_id:str}/{action:str}", operation_id="dpoMailAct")
    async def act(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        mail_id: FromPath[str],
        action: FromPath[str],
    ) -> Redirect | Template:
        """Retry or discard one mail through the vault functions the API calls; 303 back
        to the list with a notice, or the list again saying why nothing was done."""
        session = await require_session(request, vault)
        if action not in _ACTIONS:
            raise NotFound("no such action")
        mid = _mail_id(mail_id)
        form = await request.form()
        reason = form_text(form.get("reason"), 2000)
        lang = pick_language(request)
        t = TEXTS[lang]
        try:
            await _ACTIONS[action](vault, dpo_actor(request, session), mid, reason)
        except (Conflict, InvalidInput, NotFound) as exc:
            status = (
                409 if isinstance(exc, Conflict) else 422 if isinstance(exc, InvalidInput) else 404
            )
            fields = sorted(exc.errors.items()) if isinstance(exc, InvalidInput) else []
            key = N_("dpo_mail_unknown") if status == 404 else f"dpo_req_refused_{status}"
            return await _render(
                request,
                vault,
                session,
                status=status,
                error=t[key].format(reason=str(exc)),
                error_fields=fields,
            )
        query = urlencode({"lang": lang, "done": action})
        return Redirect(path=f"/dpo/mail?{query}", status_code=303)


async def _render(
    request: Request[Any, Any, Any],
    vault: Vault,
    session: DpoSession,
    *,
    status: int = 200,
    **context: Any,
) -> Template:
    wanted = request.query_params.get("status")
    only = wanted if wanted in LISTED else None
    mails = await list_mails(vault, dpo_actor(request, session), only)
    t = TEXTS[pick_language(request)]
    return page(
        request,
        "dpo_mail.html",
        "dpo_mail_heading",
        session=session,
        section="requests",
        status=status,
        mails=mails,
        only=only,
        kind_name=lambda kind: t[KIND_TEXTS[kind]] if kind in KIND_TEXTS else kind,
        **context,
    )
