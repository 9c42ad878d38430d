"""The audit trail pages: search, chain integrity, consent proof, record of processing."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Template

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
from vault.audit import chain as audit_chain
from vault.audit import query as audit_query
from vault.audit import ropa
from vault.audit.query import AuditFilter
from vault.bases import consent_proof
from vault.errors import InvalidInput, NotFound

#: Action tags offered as suggestions in the search form.
SUGGESTED_ACTIONS = ("lookup", "client:contact:lookup", "consent", "withdraw", "erase", "dpo")


class DpoTrailPages(DpoPages):
    """The audit trail: search, chain integrity, consent proof, record of processing."""

    @get("/audit", operation_id="dpoAudit")
    async def audit_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        q = request.query_params
        form = {
            "subject_id": form_text(q.get("subject_id"), 100),
            "client": form_text(q.get("client"), 100),
            "purpose": form_text(q.get("purpose"), 100),
            "action": form_text(q.get("action"), 100),
            "decision": form_text(q.get("decision"), 10),
            "since": form_text(q.get("since"), 40),
            "until": form_text(q.get("until"), 40),
            "limit": form_text(q.get("limit"), 4) or "50",
        }
        cursor = form_text(q.get("cursor"), 60) or None
        t = TEXTS[pick_language(request)]
        context: dict[str, Any] = {
            "section": "audit",
            "form": form,
            "purposes": sorted(vault.catalogue.purposes.values(), key=lambda p: p.id),
            "actions": SUGGESTED_ACTIONS,
            "client_names": [],
            "page": None,
            "cursor": cursor,
            "next_url": None,
            "first_url": None,
        }
        status = 200
        try:
            limit = int(form["limit"]) if form["limit"].isdigit() else -1
            filters = AuditFilter(
                subject_id=form["subject_id"] or None,
                client=form["client"] or None,
                purpose=form["purpose"] or None,
                action=form["action"] or None,
                decision=form["decision"] or None,
                since=parse_local(form["since"], "since"),
                until=parse_local(form["until"], "until"),
            )
            result = await audit_query.search(
                vault, dpo_actor(request, session), filters, limit=limit, cursor=cursor
            )
            context["page"] = result
            base = {k: v for k, v in form.items() if v}
            lang = pick_language(request)
            context["first_url"] = search_url(lang, **base)
            if result.next_cursor:
                context["next_url"] = search_url(lang, **base, cursor=result.next_cursor)
        except InvalidInput as exc:
            status = 422
            context["error"] = t["dpo_invalid_filter"]
            context["error_fields"] = sorted(exc.errors.items())
        context["client_names"] = [c.name for c in await list_clients(vault)]
        return page(
            request,
            "dpo_audit.html",
            "dpo_audit_heading",
            session=session,
            status=status,
            **context,
        )

    @get("/chain", operation_id="dpoChain")
    async def chain_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        status = await audit_query.chain_status(vault, dpo_actor(request, session))
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
            public_key=audit_chain.public_key_pem(vault),
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
