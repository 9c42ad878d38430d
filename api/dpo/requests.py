"""The queue of data-subject requests."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, page
from api.dpo.session import require_session
from vault.rights.requests import request_queue


class DpoRequestPages(DpoPages):
    """The queue of data-subject requests."""

    @get("/requests", operation_id="dpoRequests")
    async def requests_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        show_closed = request.query_params.get("closed") == "1"
        records = await request_queue(vault, dpo_actor(request, session), closed=show_closed)
        return page(
            request,
            "dpo_requests.html",
            "dpo_requests_heading",
            session=session,
            section="requests",
            requests=records,
            show_closed=show_closed,
        )
