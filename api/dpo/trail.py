"""The audit trail pages: search, chain integrity, consent proof, record of processing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Stream, Template

from api.deps import Vault
from api.dpo.pages import (
    DpoPages,
    dpo_actor,
    fmt_for,
    form_text,
    page,
    parse_local,
    render_proof,
    search_url,
)
from api.dpo.session import UUID_RE, require_session
from api.i18n import TEXTS, pick_language
from vault.admin.clients import (
    list_clients,
)
from vault.audit import export as audit_export
from vault.audit import query as audit_query
from vault.audit import ropa
from vault.audit import stats as audit_stats
from vault.audit.checkpoints import public_key_pem
from vault.audit.events import AuditAction
from vault.audit.query import AuditFilter
from vault.bases import consent_proof
from vault.errors import InvalidInput, NotFound

#: The query parameters of the search form, each with the longest value it keeps.
_FORM = {
    "subject_id": 100,
    "client": 100,
    "purpose": 100,
    "action": 100,
    "decision": 10,
    "since": 40,
    "until": 40,
}
#: The export's media types by format.
_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}


def _read_form(q: Any) -> dict[str, str]:
    form = {name: form_text(q.get(name), limit) for name, limit in _FORM.items()}
    # The console's own page views are hidden unless the DPO asks for them.
    form["views"] = "1" if q.get("views") == "1" else ""
    return form


def _filters(form: dict[str, str]) -> AuditFilter:
    return AuditFilter(
        subject_id=form["subject_id"] or None,
        client=form["client"] or None,
        purpose=form["purpose"] or None,
        action=form["action"] or None,
        decision=form["decision"] or None,
        since=parse_local(form["since"], "since"),
        until=parse_local(form["until"], "until"),
        hide_views=form["views"] != "1",
    )


class DpoTrailPages(DpoPages):
    """The audit trail: search, chain integrity, consent proof, record of processing."""

    @get("/audit", operation_id="dpoAudit")
    async def audit_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        q = request.query_params
        form = _read_form(q)
        form["limit"] = form_text(q.get("limit"), 4) or "50"
        cursor = form_text(q.get("cursor"), 60) or None
        t = TEXTS[pick_language(request)]
        context: dict[str, Any] = {
            "section": "audit",
            "form": form,
            "purposes": sorted(vault.catalogue.purposes.values(), key=lambda p: p.id),
            "actions": sorted(AuditAction, key=lambda a: t.get(f"action_{a}", a)),
            "clients": [],
            "export_urls": {},
            "page": None,
            "cursor": cursor,
            "next_url": None,
            "first_url": None,
        }
        status = 200
        try:
            limit = int(form["limit"]) if form["limit"].isdigit() else -1
            filters = _filters(form)
            result = await audit_query.search(
                vault, dpo_actor(request, session), filters, limit=limit, cursor=cursor
            )
            context["page"] = result
            base = {k: v for k, v in form.items() if v}
            lang = pick_language(request)
            context["first_url"] = search_url(lang, **base)
            context["export_urls"] = {
                fmt: "/dpo/audit/export?" + urlencode({**base, "format": fmt, "lang": lang})
                for fmt in audit_export.FORMATS
            }
            if result.next_cursor:
                context["next_url"] = search_url(lang, **base, cursor=result.next_cursor)
        except InvalidInput as exc:
            status = 422
            context["error"] = t["dpo_invalid_filter"]
            context["error_fields"] = sorted(exc.errors.items())
        context["clients"] = await list_clients(vault)
        return page(
            request,
            "dpo_audit.html",
            "dpo_audit_heading",
            session=session,
            status=status,
            **context,
        )

    @get("/audit/export", operation_id="dpoAuditExport")
    async def audit_export_file(
        self, request: Request[Any, Any, Any], vault: Vault
    ) -> Stream | Template:
        """The events the search filters match, oldest first, as CSV or JSON Lines (the
        columns of `tresor audit export`); recorded (`dpo:audit:export`) before it starts."""
        session = await require_session(request, vault)
        q = request.query_params
        form = _read_form(q)
        fmt = form_text(q.get("format"), 10)
        try:
            lines = await audit_export.filtered_export(
                vault, dpo_actor(request, session), _filters(form), fmt
            )
        except InvalidInput as exc:
            t = TEXTS[pick_language(request)]
            return page(
                request,
                "dpo_message.html",
                "error_title",
                session=session,
                status=422,
                heading=t["error_title"],
                text=t["dpo_invalid_filter"],
                error_fields=sorted(exc.errors.items()),
            )
        stamp = vault.clock.now().strftime("%Y%m%dT%H%M%SZ")
        return Stream(
            lines,
            media_type=_MEDIA[fmt],
            headers={"Content-Disposition": f'attachment; filename="tresor-audit-{stamp}.{fmt}"'},
        )

    @get("/chain", operation_id="dpoChain")
    async def chain_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        status = await audit_stats.chain_status(vault, dpo_actor(request, session))
        checkpoint_text = None
        if status.last_checkpoint_position is not None:
            checkpoint_text = t["dpo_chain_checkpoint_value"].format(
                position=status.last_checkpoint_position,
                seq=status.last_checkpoint_seq,
                at=fmt_for(lang)(status.last_checkpoint_at) + " UTC",
            )
        return page(
            request,
            "dpo_chain.html",
            "dpo_chain_heading",
            session=session,
            section="chain",
            chain=status,
            checkpoint_text=checkpoint_text,
            broken_text=t["dpo_chain_broken"].format(seq=status.broken_seq),
            public_key=public_key_pem(vault),
        )

    @get("/consents/{consent_id:str}/proof", operation_id="dpoConsentProof")
    async def proof_page(
        self, request: Request[Any, Any, Any], vault: Vault, consent_id: FromPath[str]
    ) -> Template:
        session = await require_session(request, vault)
        if not UUID_RE.match(consent_id):
            raise NotFound("no such consent")
        proof = await consent_proof.consent_proof(vault, dpo_actor(request, session), consent_id)
        return render_proof(request, proof, session=session)

    @get("/ropa", operation_id="dpoRopa")
    async def ropa_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        record = await ropa.record_of_processing(vault, dpo_actor(request, session))
        return page(
            request,
            "dpo_ropa.html",
            "dpo_ropa_heading",
            session=session,
            section="ropa",
            ropa=record,
        )
