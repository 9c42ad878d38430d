"""Recipients of notices: their delivery states, failed notices and overdue confirmations.

Read-only like the rest of the console; pausing, replaying and rotating a secret are the
`/v1/recipients` API's (DPO role), each audited."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, page
from api.dpo.session import require_session
from vault.recipients.acks import console_overview


class DpoRecipientPages(DpoPages):
    """Recipients and their deliveries (issue 16)."""

    @get("/recipients", operation_id="dpoRecipients")
    async def recipients_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """Each recipient with pending, delivered, failed and confirmed notices; the failed
        ones and those delivered a week ago without confirmation (pseudonymous: subject
        ids only); the read is audited."""
        session = await require_session(request, vault)
        states, failed, overdue = await console_overview(vault, dpo_actor(request, session))
        return page(
            request,
            "dpo_recipients.html",
            "dpo_rcp_heading",
            session=session,
            section="recipients",
            states=states,
            failed=failed,
            overdue=overdue,
        )
