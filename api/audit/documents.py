"""The DPO's documents from the audit trail: the consent proof and consent statistics
(`/v1/consents/...`) and the Art. 30 record of processing (`/v1/ropa`), as JSON or, for the
proof, as a printable page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from litestar import Controller, Request, Response, get
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter

from api.audit.schemas import (
    ConsentBucketOut,
    ConsentProofOut,
    ConsentStatsOut,
    ProofCheckpointOut,
    ProofEvidenceOut,
    ProofNoticeOut,
    ProofPurposeOut,
    PurposeConsentStatsOut,
    RopaActivityOut,
    RopaMeasureOut,
    RopaNotifiedRecipientOut,
    RopaObservedRecipientOut,
    RopaOut,
    RopaPartyOut,
    RopaRecipientOut,
    RopaTransferOut,
)
from api.audit.trail import Bucket, event_out, parse_time, time_param
from api.auth import actor_of, roles
from api.bases.schemas import HistoryEntry
from api.deps import Vault
from api.dpo.pages import render_proof
from api.openapi_docs import AUTHED, problems
from api.query_params import query, reject_unknown_query
from api.rights.schemas import PurposeTitle
from api.schemas import Uuid, uuid_path
from vault.admin.clients import Role
from vault.audit import ropa
from vault.audit import stats as audit_stats
from vault.bases import consent_proof
from vault.catalogue.controller import Party


def consent_stats_out(s: audit_stats.ConsentStats) -> ConsentStatsOut:
    return ConsentStatsOut(
        since=s.since,
        until=s.until,
        bucket=s.bucket,  # type: ignore[arg-type]  # the vault checks it is one of audit_stats.BUCKETS, the values of this Literal
        purposes=[
            PurposeConsentStatsOut(
                purpose=p.purpose,
                granted=p.granted,
                withdrawn=p.withdrawn,
                expired=p.expired,
                series=[
                    ConsentBucketOut(b.start, b.granted, b.withdrawn, b.expired) for b in p.series
                ],
            )
            for p in s.purposes
        ],
    )


def proof_out(p: consent_proof.ConsentProof) -> ConsentProofOut:
    e = p.evidence
    return ConsentProofOut(
        consent_id=p.consent_id,
        subject_id=p.subject_id,
        purpose_id=p.purpose_id,
        basis=p.basis,
        status=p.status,
        stored_status=p.stored_status,
        created_at=p.created_at,
        subject_status=p.subject_status,
        excluded_fields=p.excluded_fields,
        evidence=ProofEvidenceOut(
            # Why the ignore below: the vault sets only "opened", "none" or "shredded"
            sealed_evidence=e.sealed_evidence,  # type: ignore[arg-type]
            touchpoint=e.touchpoint,
            method=e.method,
            notice_version=e.notice_version,
            notice_text_hash=e.notice_text_hash,
            language=e.language,
            collected_by=e.collected_by,
            ip=e.ip,
            user_agent=e.user_agent,
            brands=list(e.brands) if e.brands else None,
        ),
        history=[
            HistoryEntry(
                at=h.at, event=h.event, status=h.status, actor=h.actor, expires_at=h.expires_at
            )
            for h in p.history
        ],
        events=[event_out(x) for x in p.events],
        recipient_notices=[
            ProofNoticeOut(
                recipient=n.recipient,
                event_type=n.event_type,
                occurred_at=n.occurred_at,
                status=n.status,
                delivered_at=n.delivered_at,
                confirmed=n.ack_outcome,
                confirmed_at=n.acked_at,
                closed_by_dpo=n.closed_reason is not None,
            )
            for n in p.notices
        ],
        generated_at=p.generated_at,
        generated_by=p.generated_by,
        purpose=(
            ProofPurposeOut(
                id=p.purpose.id,
                title=PurposeTitle(de=p.purpose.title_de, en=p.purpose.title_en),
                lawful_basis=p.purpose.lawful_basis,
                double_opt_in=p.purpose.double_opt_in,
                explicit_consent=p.purpose.explicit_consent,
                channel=p.purpose.channel,
                data_use=p.purpose.data_use,
                catalogue_version=p.purpose.catalogue_version,
            )
            if p.purpose
            else None
        ),
        reference=p.reference,
        granted_at=p.granted_at,
        expires_at=p.expires_at,
        withdrawn_at=p.withdrawn_at,
        confirm_deadline=p.confirm_deadline,
        checkpoint=(
            ProofCheckpointOut(
                position=p.checkpoint.position,
                seq=p.checkpoint.seq,
                head=p.checkpoint.head,
                at=p.checkpoint.at,
                key_id=p.checkpoint.key_id,
                signature=p.checkpoint.signature,
            )
            if p.checkpoint
            else None
        ),
    )


def ropa_out(r: ropa.Ropa) -> RopaOut:
    return RopaOut(
        catalogue_version=r.catalogue_version,
        generated_at=r.generated_at,
        activities=[
            RopaActivityOut(
                purpose=a.purpose,
                title=PurposeTitle(de=a.title_de, en=a.title_en),
                description=PurposeTitle(de=a.description_de, en=a.description_en),
                lawful_basis=a.lawful_basis,
                legal_reference=a.legal_reference,
                data_categories=list(a.data_categories),
                subject_categories=list(a.subject_categories),
                recipients=[RopaRecipientOut(x.client, x.role) for x in a.recipients],
                observed_recipients=[
                    RopaObservedRecipientOut(x.client, x.reads, x.last_read_at)
                    for x in a.observed_recipients
                ],
                retention_after_end_days=a.retention_after_end_days,
                notified_recipients=[
                    RopaNotifiedRecipientOut(x.name, x.transport, list(x.event_types))
                    for x in a.notified_recipients
                ],
                channel=a.channel,
                communication_type=a.communication_type,
                double_opt_in=a.double_opt_in,
                explicit_consent=a.explicit_consent,
                data_use=a.data_use,
                default_consent_days=a.default_consent_days,
                third_country_transfers=[
                    RopaTransferOut(t.country, t.recipient, t.safeguard, t.safeguard_reference)
                    for t in a.third_country_transfers
                ],
            )
            for a in r.activities
        ],
        security_measures=[
            RopaMeasureOut(id=m.id, description=PurposeTitle(de=m.de, en=m.en))
            for m in r.security_measures
        ],
        controller=_party(r.controller),
        dpo=_party(r.dpo),
        controller_version=r.controller_version,
    )


def _party(p: Party) -> RopaPartyOut:
    return RopaPartyOut(p.name, p.email, p.address, p.representative)


def wants_html(request: Request[Any, Any, Any], fmt: str | None) -> bool:
    """`?format=` wins; otherwise an Accept header that prefers HTML over JSON."""
    if fmt is not None:
        return fmt == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


@dataclass
class JsonOrHtmlOperation(Operation):
    """The proof's 200 answer is JSON by default and printable HTML on request."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/html"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


class DpoConsentController(Controller):
    before_request = staticmethod(reject_unknown_query)
    path = "/v1/consents"
    tags = ["audit"]
    opt = roles(Role.DPO)

    @get(
        "/{consent_id:str}/proof",
        operation_id="consentProof",
        opt=query("format", "lang"),
        summary="Proof of one consent: evidence (IP and user agent opened), history, audit events",
        description=(
            "JSON by default; `format=html` (or `Accept: text/html`) answers a printable page. "
            "Opening the sealed evidence is audited as `dpo:consent:proof`."
        ),
        responses=problems(*AUTHED, 404, 500),
        operation_class=JsonOrHtmlOperation,
    )
    async def proof(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        consent_id: Uuid = uuid_path("The consent's id"),
        format: Literal["json", "html"] | None = Parameter(  # noqa: A002 - the query parameter's name
            required=False, description="`html` for a printable page"
        ),
        lang: Literal["de", "en"] | None = Parameter(
            required=False, description="Language of the HTML page (else Accept-Language)"
        ),
    ) -> Response[ConsentProofOut]:
        proof = await consent_proof.consent_proof(vault, actor_of(request), consent_id)
        if wants_html(request, format):
            # Why the ignore below: the HTML variant is a template; the return annotation
            # describes the JSON body for the OpenAPI document.
            return render_proof(request, proof)  # type: ignore[return-value]
        return Response(proof_out(proof), headers={"Cache-Control": "no-store"})

    @get(
        "/stats",
        operation_id="consentStats",
        opt=query("since", "until", "bucket"),
        summary="Consents granted, withdrawn and expired per purpose over time; audited",
        description=(
            "Counts consents (lawful basis `consent`) by the UTC day or hour they were "
            "granted (confirmed, for double opt-in), withdrawn, or expired while granted. "
            "A range longer than 2000 buckets is cut to its last 2000 (the answer's `since` "
            "says where it starts); an empty or reversed range has none."
        ),
        responses=problems(*AUTHED, 422),
    )
    async def stats(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        since: str | None = time_param("Start (inclusive)"),
        until: str | None = time_param("End (exclusive)"),
        bucket: Bucket = Parameter(default="day", description="Size of the time buckets"),
    ) -> ConsentStatsOut:
        stats = await audit_stats.consent_stats(
            vault,
            actor_of(request),
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            bucket=bucket,
        )
        return consent_stats_out(stats)


class RopaController(Controller):
    before_request = staticmethod(reject_unknown_query)
    path = "/v1/ropa"
    tags = ["audit"]
    opt = roles(Role.DPO)

    @get(
        "/",
        operation_id="recordOfProcessing",
        summary="Record of processing activities (GDPR Art. 30), generated; the read is audited",
        description=(
            "One activity per purpose of the catalogue: lawful basis, categories of data and "
            "subjects, recipients (clients allowed the purpose, and clients the audit trail "
            "shows reading it), retention; plus the technical and organisational measures."
        ),
        responses=problems(*AUTHED),
    )
    async def ropa(self, request: Request[Any, Any, Any], vault: Vault) -> RopaOut:
        return ropa_out(await ropa.record_of_processing(vault, actor_of(request)))
