"""The data-protection officer's API: audit search and statistics, chain status, consent
proof and the record of processing activities (Art. 30). Role `dpo`; every read is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from litestar import Controller, MediaType, Request, Response, get
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter

from api.auth import actor_of, roles
from api.dpo.pages import render_proof
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.audit.schemas import (
    AccessBucketOut,
    AccessReadsOut,
    AccessStatsOut,
    AuditEventOut,
    AuditPageOut,
    ChainStatusOut,
    CheckpointOut,
    ConsentBucketOut,
    ConsentProofOut,
    ConsentStatsOut,
    DenialCountOut,
    ProofCheckpointOut,
    ProofEvidenceOut,
    ProofPurposeOut,
    PurposeConsentStatsOut,
    RopaActivityOut,
    RopaMeasureOut,
    RopaObservedRecipientOut,
    RopaOut,
    RopaRecipientOut,
)
from api.bases.schemas import HistoryEntry
from api.rights.schemas import PurposeTitle
from api.schemas import Uuid, uuid_path
from vault.audit import chain as audit_chain
from vault.audit import query as audit_query
from vault.bases import consent_proof
from vault.audit import ropa
from vault.audit.query import AuditFilter, AuditItem
from vault.admin.clients import Role
from vault.errors import InvalidInput

CLIENT_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
PURPOSE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
ACTION_PATTERN = r"^[a-z_]{1,40}(:[a-z_]{1,40}){0,2}$"
CURSOR_PATTERN = r"^c1\.[A-Za-z0-9_-]{1,24}$"
UUID_PATTERN = r"^[0-9a-f-]{36}$"

Bucket = Literal["day", "hour"]
#: RFC 3339 date-time with an offset (a time without one would be ambiguous).
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"


def time_param(description: str) -> Any:
    """An RFC 3339 time query parameter. Taken as text and parsed here, because Litestar
    would also accept a bare number as a Unix timestamp."""
    return Parameter(
        required=False,
        max_length=32,
        pattern=TIME_PATTERN,
        description=description + "; RFC 3339 with offset, e.g. 2026-11-23T10:00:00Z",
        schema_extra={"format": "date-time"},
    )


def parse_time(value: str | None, name: str) -> datetime | None:
    """The aware datetime of an RFC 3339 text, or `InvalidInput` naming the parameter."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput("invalid time", {name: "must be an RFC 3339 date-time"}) from None
    if parsed.tzinfo is None:
        raise InvalidInput("invalid time", {name: "needs an offset, e.g. Z"})
    return parsed


# -- conversions (shared with the console) ------------------------------------------------------


def event_out(e: AuditItem) -> AuditEventOut:
    return AuditEventOut(
        seq=e.seq,
        at=e.at,
        actor_type=e.actor_type,
        actor_id=e.actor_id,
        action=e.action,
        subject_id=e.subject_id,
        purpose=e.purpose,
        fields=list(e.fields),
        decision=e.decision,
        reason=e.reason,
        consent_id=e.consent_id,
        request_id=e.request_id,
        sealed=e.sealed,
    )


def access_stats_out(s: audit_query.AccessStats) -> AccessStatsOut:
    return AccessStatsOut(
        since=s.since,
        until=s.until,
        bucket=s.bucket,  # type: ignore[arg-type]
        total=s.total,
        allowed=s.allowed,
        denied=s.denied,
        by_client_purpose=[
            AccessReadsOut(r.client, r.purpose, r.allowed, r.denied, r.total)
            for r in s.by_client_purpose
        ],
        denials_by_reason=[DenialCountOut(r.reason, r.count) for r in s.denials_by_reason],
        series=[AccessBucketOut(b.start, b.allowed, b.denied, b.total) for b in s.series],
    )


def consent_stats_out(s: audit_query.ConsentStats) -> ConsentStatsOut:
    return ConsentStatsOut(
        since=s.since,
        until=s.until,
        bucket=s.bucket,  # type: ignore[arg-type]
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


def chain_out(s: audit_query.ChainStatus) -> ChainStatusOut:
    return ChainStatusOut(
        ok=s.ok,
        verified=s.verified,
        unsealed=s.unsealed,
        checkpoints=s.checkpoints,
        checked_at=s.checked_at,
        last_verified_checkpoint=s.last_verified_checkpoint,
        broken_seq=s.broken_seq,
        problem=s.problem,
        last_checkpoint=(
            CheckpointOut(
                position=s.last_checkpoint_position,
                seq=s.last_checkpoint_seq,  # type: ignore[arg-type]
                at=s.last_checkpoint_at,  # type: ignore[arg-type]
                key_id=s.key_id or "",
            )
            if s.last_checkpoint_position is not None
            else None
        ),
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
        evidence=ProofEvidenceOut(
            sealed_evidence=e.sealed_evidence,  # type: ignore[arg-type]
            touchpoint=e.touchpoint,
            method=e.method,
            notice_version=e.notice_version,
            notice_text_hash=e.notice_text_hash,
            language=e.language,
            collected_by=e.collected_by,
            ip=e.ip,
            user_agent=e.user_agent,
        ),
        history=[
            HistoryEntry(
                at=h.at, event=h.event, status=h.status, actor=h.actor, expires_at=h.expires_at
            )
            for h in p.history
        ],
        events=[event_out(x) for x in p.events],
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
                channel=a.channel,
                communication_type=a.communication_type,
                double_opt_in=a.double_opt_in,
                explicit_consent=a.explicit_consent,
                data_use=a.data_use,
                default_consent_days=a.default_consent_days,
            )
            for a in r.activities
        ],
        security_measures=[
            RopaMeasureOut(id=m.id, description=PurposeTitle(de=m.de, en=m.en))
            for m in r.security_measures
        ],
    )


async def reject_unknown_query(request: Request[Any, Any, Any]) -> None:
    """Unknown query parameters are refused (400), not ignored: a mistyped filter on an
    audit search would otherwise silently widen the result to everything."""
    allowed: frozenset[str] = request.route_handler.opt.get("query", frozenset())
    unknown = sorted(k for k in request.query_params if k not in allowed)
    if unknown:
        raise ValidationException(
            "unknown query parameter",
            extra=[
                {"key": k[:40], "message": "is not a parameter of this operation"}
                for k in unknown
            ],
        )


def query(*names: str) -> dict[str, Any]:
    """Handler `opt` naming the query parameters the handler takes."""
    return {"query": frozenset(names)}


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


class AuditController(Controller):
    before_request = reject_unknown_query
    path = "/v1/audit"
    tags = ["audit"]
    opt = roles(Role.DPO)

    @get(
        "/",
        operation_id="searchAudit",
        opt=query(
            "subject_id", "client", "purpose", "action", "decision", "since", "until", "limit",
            "cursor",
        ),
        summary="Search the audit trail (newest first, cursor paging); the search is audited",
        description=(
            "All filters are optional and combine with AND. `client` is the acting client's "
            "name; `action` is a full `source:subject:action` tag or its last part (so "
            "`lookup` finds `client:contact:lookup`); `since` is inclusive, `until` "
            "exclusive. Pass the answer's `next_cursor` as `cursor` for the next page; "
            "it is null on the last page."
        ),
        responses=problems(*AUTHED, 422),
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: str | None = Parameter(
            required=False, min_length=36, max_length=36,
            pattern=UUID_PATTERN, description="Only events about this subject",
        ),
        client: str | None = Parameter(
            required=False, max_length=100, pattern=CLIENT_PATTERN,
            description="Only events by this client (its name)",
        ),
        purpose: str | None = Parameter(
            required=False, max_length=100, pattern=PURPOSE_PATTERN,
            description="Only events naming this purpose",
        ),
        action: str | None = Parameter(
            required=False, max_length=64, pattern=ACTION_PATTERN,
            description="An action tag or its last part(s), e.g. `lookup`",
        ),
        decision: Literal["allow", "deny"] | None = Parameter(
            required=False, description="Only allowed or only denied events"
        ),
        since: str | None = time_param("Events at or after this time (with offset)"),
        until: str | None = time_param("Events before this time (with offset)"),
        limit: int = Parameter(
            default=audit_query.DEFAULT_LIMIT, ge=1, le=audit_query.MAX_LIMIT,
            description="Page size (1 to 500)",
        ),
        cursor: str | None = Parameter(
            required=False, max_length=40, pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page",
        ),
    ) -> AuditPageOut:
        page = await audit_query.search(
            vault,
            actor_of(request),
            AuditFilter(
                subject_id, client, purpose, action, decision,
                parse_time(since, "since"), parse_time(until, "until"),
            ),
            limit=limit,
            cursor=cursor,
        )
        return AuditPageOut(items=[event_out(e) for e in page.items], next_cursor=page.next_cursor)

    @get(
        "/stats",
        operation_id="auditStats",
        opt=query("since", "until", "bucket"),
        summary="Access statistics: lookups per client and purpose, denials by reason, over time",
        description=(
            "Counts lookups (allowed and denied) with since <= at < until; defaults to the "
            "last 30 days by day or the last 48 hours by hour. Buckets are UTC days or hours; "
            "at most 2000 per query. The read is audited."
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
    ) -> AccessStatsOut:
        stats = await audit_query.access_stats(
            vault,
            actor_of(request),
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            bucket=bucket,
        )
        return access_stats_out(stats)

    @get(
        "/chain",
        operation_id="auditChainStatus",
        summary="Verify the sealed chain and every checkpoint signature now; the check is audited",
        description=(
            "Reads the whole chain (seconds per million events). `ok` is false and "
            "`broken_seq` names the first broken sequence number when the trail was altered."
        ),
        responses=problems(*AUTHED),
    )
    async def chain(self, request: Request[Any, Any, Any], vault: Vault) -> ChainStatusOut:
        return chain_out(await audit_query.chain_status(vault, actor_of(request)))

    @get(
        "/public-key",
        operation_id="auditPublicKey",
        summary="The Ed25519 public key (PEM) that verifies the signed checkpoints",
        media_type=MediaType.TEXT,
        responses=problems(*AUTHED),
    )
    async def public_key(self, vault: Vault) -> str:
        return audit_chain.public_key_pem(vault)


class DpoConsentController(Controller):
    before_request = reject_unknown_query
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
        format: Literal["json", "html"] | None = Parameter(  # noqa: A002
            required=False, description="`html` for a printable page"
        ),
        lang: Literal["de", "en"] | None = Parameter(
            required=False, description="Language of the HTML page (else Accept-Language)"
        ),
    ) -> Response[ConsentProofOut]:
        proof = await consent_proof.consent_proof(vault, actor_of(request), consent_id)
        if wants_html(request, format):
            return render_proof(request, proof)  # type: ignore[return-value]
        return Response(proof_out(proof), headers={"Cache-Control": "no-store"})

    @get(
        "/stats",
        operation_id="consentStats",
        opt=query("since", "until", "bucket"),
        summary="Consents granted, withdrawn and expired per purpose over time; audited",
        description=(
            "Counts consents (lawful basis `consent`) by the UTC day or hour they were "
            "granted (confirmed, for double opt-in), withdrawn, or expired while granted."
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
        stats = await audit_query.consent_stats(
            vault,
            actor_of(request),
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            bucket=bucket,
        )
        return consent_stats_out(stats)


class RopaController(Controller):
    before_request = reject_unknown_query
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
