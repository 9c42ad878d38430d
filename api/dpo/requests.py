"""The queue of data-subject requests, one request with its history, and every move of the
workflow (verify, approve, reject, extend, complete) as a form.

The forms call the same vault functions as the API (`vault.rights.requests`), so the
console and `POST /v1/requests/{id}/…` move a request by one rule (`TRANSITIONS`); the
forms offered are the moves that rule allows from the request's status. A refused move
(409) or bad input (422) shows the request again with the reason; nothing changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, form_text, page
from api.dpo.session import UUID_RE, DpoSession, require_session
from api.i18n import TEXTS, format_datetime, pick_language
from vault import mail_outbox
from vault.clock import as_utc
from vault.errors import Conflict, InvalidInput, NotFound
from vault.rights import deadlines
from vault.rights import requests as dsar
from vault.rights.requests import TRANSITIONS, RequestAction, RequestRecord, RequestStatus

#: The moves a DPO makes from the console, in the order the page offers them.
DPO_ACTIONS = (
    RequestAction.VERIFY,
    RequestAction.APPROVE,
    RequestAction.COMPLETE,
    RequestAction.EXTEND,
    RequestAction.REJECT,
)


def offered_actions(record: RequestRecord) -> list[str]:
    """The DPO's moves `TRANSITIONS` allows from the request's status (and its subject guard:
    without a subject only `complete`, `extend` and `reject`)."""
    status = RequestStatus(record.status)
    out = []
    for action in DPO_ACTIONS:
        if (status, action) not in TRANSITIONS:
            continue
        if record.subject_id is None and action in (RequestAction.VERIFY, RequestAction.APPROVE):
            continue
        if (
            action is RequestAction.COMPLETE
            and status is RequestStatus.RECEIVED
            and record.subject_id is not None
        ):
            continue
        out.append(action.value)
    return out


def extension_rules(record: RequestRecord, now: datetime, lang: str) -> dict[str, Any]:
    """What the page says before `extend`: the latest day to extend, the due date each
    choice gives, and why extending is refused (if it is)."""
    received = as_utc(record.received_at)
    fmt = lambda dt: format_datetime(dt, lang, "day")  # noqa: E731 - a local formatter
    refusal = deadlines.extension_refusal(received, as_utc(record.extended_at), now, 1)
    return {
        "extend_by": fmt(deadlines.due_date(received)),
        "choices": [(m, fmt(deadlines.extended_due(received, m))) for m in (1, 2)],
        "refusal": refusal,
    }


class DpoRequestPages(DpoPages):
    """The request queue, a request's page and its moves."""

    @get("/requests", operation_id="dpoRequests")
    async def requests_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        show_closed = request.query_params.get("closed") == "1"
        records = await dsar.request_queue(vault, dpo_actor(request, session), closed=show_closed)
        # Mails the outbox gave up on (a customer was not told something): counts only.
        mail = await mail_outbox.counts(vault)
        return page(
            request,
            "dpo_requests.html",
            "dpo_requests_heading",
            session=session,
            section="requests",
            requests=records,
            show_closed=show_closed,
            mail_failed=mail["failed"],
            mail_pending=mail["pending"],
        )

    @get("/requests/{request_id:str}", operation_id="dpoRequest")
    async def request_page(
        self, request: Request[Any, Any, Any], vault: Vault, request_id: FromPath[str]
    ) -> Template:
        """One request: its dates, history and the forms of the moves allowed now; the read
        is audited (`dpo:request:read`)."""
        session = await require_session(request, vault)
        done = request.query_params.get("done")
        t = TEXTS[pick_language(request)]
        notice = t[f"dpo_req_done_{done}"] if done in DPO_ACTIONS else None
        return await _render(request, vault, session, request_id, notice=notice)

    @post("/requests/{request_id:str}/{action:str}", operation_id="dpoRequestAct")
    async def act(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        request_id: FromPath[str],
        action: FromPath[str],
    ) -> Redirect | Template:
        """Carry out one move through the vault's workflow; 303 back to the request."""
        session = await require_session(request, vault)
        if not UUID_RE.match(request_id) or action not in DPO_ACTIONS:
            raise NotFound("no such request action")
        form = await request.form()
        actor = dpo_actor(request, session)
        reason = form_text(form.get("reason"), 2000)
        lang = pick_language(request)
        try:
            if action == RequestAction.VERIFY:
                await dsar.verify(vault, actor, request_id)
            elif action == RequestAction.APPROVE:
                await dsar.approve(vault, actor, request_id)
            elif action == RequestAction.REJECT:
                await dsar.reject(vault, actor, request_id, reason)
            elif action == RequestAction.COMPLETE:
                await dsar.complete(vault, actor, request_id, reason or None)
            else:
                months_text = form_text(form.get("months"), 2)
                months = int(months_text) if months_text in ("1", "2") else 0
                await dsar.extend(vault, actor, request_id, reason, months=months)
        except (Conflict, InvalidInput) as exc:
            t = TEXTS[lang]
            status = 409 if isinstance(exc, Conflict) else 422
            fields = sorted(exc.errors.items()) if isinstance(exc, InvalidInput) else []
            return await _render(
                request,
                vault,
                session,
                request_id,
                status=status,
                error=t[f"dpo_req_refused_{status}"].format(reason=str(exc)),
                error_fields=fields,
            )
        query = urlencode({"lang": lang, "done": action})
        return Redirect(path=f"/dpo/requests/{request_id}?{query}", status_code=303)


async def _render(
    request: Request[Any, Any, Any],
    vault: Vault,
    session: DpoSession,
    request_id: str,
    *,
    status: int = 200,
    **context: Any,
) -> Template:
    if not UUID_RE.match(request_id):
        raise NotFound("no such request")
    record = await dsar.read_request(vault, dpo_actor(request, session), request_id)
    lang = pick_language(request)

    def purpose_title(purpose_id: str) -> str:
        purpose = vault.catalogue.get(purpose_id)
        return purpose.title(lang) if purpose else purpose_id

    return page(
        request,
        "dpo_request.html",
        "dpo_req_heading",
        session=session,
        section="requests",
        status=status,
        r=record,
        actions=offered_actions(record),
        extension=extension_rules(record, vault.clock.now(), lang),
        purpose_title=purpose_title,
        **context,
    )
