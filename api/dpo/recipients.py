"""Recipients of notices: their delivery states, failed notices and overdue confirmations,
and the DPO's actions on them.

The actions are forms (CSRF-checked like every console form) calling the same vault
functions as the `/v1/recipients` API, so each is audited the same way: pausing and
resuming a recipient, replaying its notices from a point in time, rotating its signing
secret (the new secret is shown once, on the answer page, never stored in plain text or
put in a URL), and closing a notice nobody will confirm, with a reason. A successful
action answers 303 back to the page with what was done (the post/redirect/get pattern, so
a reload does not repeat it); the rotation answers its page directly, marked no-store."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, form_text, page, parse_local
from api.dpo.session import DpoSession, require_session
from api.i18n import N_, pick_language
from vault.errors import InvalidInput
from vault.recipients import registry
from vault.recipients.acks import close, console_overview, replay

#: What the page says after each action (message ids, see the catalogues).
DONE = {
    "paused": N_("dpo_rcp_done_paused"),
    "resumed": N_("dpo_rcp_done_resumed"),
    "replayed": N_("dpo_rcp_done_replayed"),
    "closed": N_("dpo_rcp_done_closed"),
}


class DpoRecipientPages(DpoPages):
    """Recipients and their deliveries (issue 16)."""

    @get("/recipients", operation_id="dpoRecipients")
    async def recipients_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """Each recipient with pending, delivered, failed and confirmed notices; the failed
        ones and those delivered a week ago without confirmation (pseudonymous: subject
        ids only); the read is audited."""
        session = await require_session(request, vault)
        done = request.query_params.get("done") or ""
        count = request.query_params.get("count") or ""
        return await _overview(
            request,
            vault,
            session,
            done=DONE.get(done),
            count=int(count) if count.isdigit() else 0,
        )

    @post("/recipients/{name:str}/pause", operation_id="dpoRecipientPause", status_code=303)
    async def pause(
        self, request: Request[Any, Any, Any], vault: Vault, name: FromPath[str]
    ) -> Redirect:
        session = await require_session(request, vault)
        await registry.set_paused(vault, dpo_actor(request, session), name, True)
        return _back(request, "paused")

    @post("/recipients/{name:str}/resume", operation_id="dpoRecipientResume", status_code=303)
    async def resume(
        self, request: Request[Any, Any, Any], vault: Vault, name: FromPath[str]
    ) -> Redirect:
        session = await require_session(request, vault)
        await registry.set_paused(vault, dpo_actor(request, session), name, False)
        return _back(request, "resumed")

    @post("/recipients/{name:str}/replay", operation_id="dpoRecipientReplay", status_code=303)
    async def replay_from(
        self, request: Request[Any, Any, Any], vault: Vault, name: FromPath[str]
    ) -> Redirect:
        """Queue the recipient's notices of events since the given time again (same ids;
        each keeps its first give-up deadline, see `vault.recipients.acks.replay`)."""
        session = await require_session(request, vault)
        form = await request.form()
        since = parse_local(form_text(form.get("since"), 40), "since")
        if since is None:
            raise InvalidInput("a time is needed", {"since": "is required"})
        count = await replay(vault, dpo_actor(request, session), name, since)
        return _back(request, "replayed", count=count)

    @post("/recipients/{name:str}/rotate", operation_id="dpoRecipientRotate", status_code=200)
    async def rotate(
        self, request: Request[Any, Any, Any], vault: Vault, name: FromPath[str]
    ) -> Template:
        """A new signing secret, shown on this answer only (not cached, not in a URL); the
        previous one keeps signing for the default overlap."""
        session = await require_session(request, vault)
        secret = await registry.rotate_secret(vault, dpo_actor(request, session), name)
        return await _overview(
            request,
            vault,
            session,
            headers={"Cache-Control": "no-store"},
            rotated=name,
            secret=secret,
        )

    @post(
        "/recipients/notices/{notice_id:str}/close",
        operation_id="dpoNoticeClose",
        status_code=303,
    )
    async def close_notice(
        self, request: Request[Any, Any, Any], vault: Vault, notice_id: FromPath[str]
    ) -> Redirect:
        """Close a notice nobody confirmed, with the DPO's reason (1 to 500 characters)."""
        session = await require_session(request, vault)
        form = await request.form()
        reason = form_text(form.get("reason"), 501)
        await close(vault, dpo_actor(request, session), notice_id, reason)
        return _back(request, "closed")


async def _overview(
    request: Request[Any, Any, Any],
    vault: Vault,
    session: DpoSession,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Template:
    states, failed, overdue = await console_overview(vault, dpo_actor(request, session))
    return page(
        request,
        "dpo_recipients.html",
        "dpo_rcp_heading",
        session=session,
        headers=headers,
        section="recipients",
        states=states,
        failed=failed,
        overdue=overdue,
        **extra,
    )


def _back(request: Request[Any, Any, Any], done: str, **params: int) -> Redirect:
    query = {"lang": pick_language(request), "done": done} | {k: str(v) for k, v in params.items()}
    return Redirect(path="/dpo/recipients?" + urlencode(query), status_code=303)
