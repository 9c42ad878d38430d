"""The data-protection officer's API: audit search and statistics, chain status, consent
proof and the record of processing activities (Art. 30). Role `dpo`; every read is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from litestar import Controller, MediaType, Request, get
from litestar.params import Parameter

from api.audit.schemas import (
    AccessBucketOut,
    AccessReadsOut,
    AccessStatsOut,
    AuditEventOut,
    AuditPageOut,
    ChainStatusOut,
    CheckpointOut,
    DenialCountOut,
)
from api.auth import actor_of, roles
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.query_params import query, reject_unknown_query
from vault.admin.clients import Role
from vault.audit import query as audit_query
from vault.audit import stats as audit_stats
from vault.audit.checkpoints import public_key_pem
from vault.audit.query import AuditFilter, AuditItem
from vault.errors import InvalidInput

CLIENT_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
PURPOSE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
ACTION_PATTERN = r"^[a-z_]{1,40}(:[a-z_]{1,40}){0,2}$"
#: Exactly the cursors that decode (a pattern-valid cursor is never refused).
CURSOR_PATTERN = audit_query.CURSOR_PATTERN
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
        description=description + "; RFC 3339 with offset, e.g. 2026-11-23T10:00:00Z (a time "
        "before 1970 or after 9000 is taken as 1970 or 9000: the trail holds nothing beyond)",
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


def access_stats_out(s: audit_stats.AccessStats) -> AccessStatsOut:
    return AccessStatsOut(
        since=s.since,
        until=s.until,
        bucket=s.bucket,  # type: ignore[arg-type]  # the vault checks it is one of audit_stats.BUCKETS, the values of this Literal
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


def chain_out(s: audit_stats.ChainStatus) -> ChainStatusOut:
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
                # Why the ignore below: seq and at are set with the position, checked below
                seq=s.last_checkpoint_seq,  # type: ignore[arg-type]
                at=s.last_checkpoint_at,  # type: ignore[arg-type]
                key_id=s.key_id or "",
            )
            if s.last_checkpoint_position is not None
            else None
        ),
    )


class AuditController(Controller):
    before_request = staticmethod(reject_unknown_query)
    path = "/v1/audit"
    tags = ["audit"]
    opt = roles(Role.DPO)

    @get(
        "/",
        operation_id="searchAudit",
        opt=query(
            "subject_id",
            "client",
            "purpose",
            "action",
            "decision",
            "since",
            "until",
            "limit",
            "cursor",
        ),
        summary="Search the audit trail (newest first, cursor paging); the search is audited",
        description=(
            "All filters are optional and combine with AND. `client` is the acting client's "
            "name; `action` is a full `source:subject:action` tag or its last part (so "
            "`lookup` finds `client:contact:lookup`); `since` is inclusive, `until` "
            "exclusive (an empty or reversed range selects nothing). Pass the answer's "
            "`next_cursor` as `cursor` for the next page; it is null on the last page."
        ),
        responses=problems(*AUTHED, 422),
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: str | None = Parameter(
            required=False,
            min_length=36,
            max_length=36,
            pattern=UUID_PATTERN,
            description="Only events about this subject",
        ),
        client: str | None = Parameter(
            required=False,
            max_length=100,
            pattern=CLIENT_PATTERN,
            description="Only events by this client (its name)",
        ),
        purpose: str | None = Parameter(
            required=False,
            max_length=100,
            pattern=PURPOSE_PATTERN,
            description="Only events naming this purpose",
        ),
        action: str | None = Parameter(
            required=False,
            max_length=64,
            pattern=ACTION_PATTERN,
            description="An action tag or its last part(s), e.g. `lookup`",
        ),
        decision: Literal["allow", "deny"] | None = Parameter(
            required=False, description="Only allowed or only denied events"
        ),
        since: str | None = time_param("Events at or after this time (with offset)"),
        until: str | None = time_param("Events before this time (with offset)"),
        limit: int = Parameter(
            default=audit_query.DEFAULT_LIMIT,
            ge=1,
            le=audit_query.MAX_LIMIT,
            description="Page size (1 to 500)",
        ),
        cursor: str | None = Parameter(
            required=False,
            max_length=40,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page",
        ),
    ) -> AuditPageOut:
        page = await audit_query.search(
            vault,
            actor_of(request),
            AuditFilter(
                subject_id,
                client,
                purpose,
                action,
                decision,
                parse_time(since, "since"),
                parse_time(until, "until"),
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
            "a longer range is cut to its last 2000 buckets (the answer's `since` says where "
            "it starts), an empty or reversed range has none. The read is audited."
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
        stats = await audit_stats.access_stats(
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
        return chain_out(await audit_stats.chain_status(vault, actor_of(request)))

    @get(
        "/public-key",
        operation_id="auditPublicKey",
        summary="The Ed25519 public key (PEM) that verifies the signed checkpoints",
        media_type=MediaType.TEXT,
        responses=problems(*AUTHED),
    )
    async def public_key(self, vault: Vault) -> str:
        return public_key_pem(vault)
