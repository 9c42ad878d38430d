"""The DPO's statistics of the audit trail: access per client and purpose, denials by reason,
consent grants and withdrawals over time buckets, and the chain's status.

Split from `query` (the search): statistics aggregate over a time range in buckets and never
return single events. Every statistics read is itself audited in the same transaction, like a
search, so a read that cannot be recorded reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit import verify as audit_verify
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput
from vault.storage.audit_tables import audit_checkpoints, audit_events
from vault.storage.dialect import utc_bucket
from vault.storage.tables import consents

if TYPE_CHECKING:
    from vault.context import VaultContext
from vault.audit.query import _utc

#: A statistics query may span at most this many time buckets.
MAX_BUCKETS = 2000


BUCKETS = ("day", "hour")


def bucket_key(conn: AsyncConnection, column: Any, bucket: str) -> Any:
    """A SQL expression naming the UTC day (`YYYY-MM-DD`) or hour (`YYYY-MM-DD HH`) of a
    timestamp, the same text on both databases. SQLite keeps UTC timestamps as ISO text, so
    a prefix of it is the bucket; PostgreSQL formats the instant in UTC."""
    return utc_bucket(conn, column, bucket)


def _bucket_start(key: str, bucket: str) -> datetime:
    if bucket == "day":
        return datetime.strptime(key[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    return datetime.strptime(key[:13].replace("T", " "), "%Y-%m-%d %H").replace(tzinfo=UTC)


def _floor(at: datetime, bucket: str) -> datetime:
    at = at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if bucket == "day" else at


def _step(bucket: str) -> timedelta:
    return timedelta(days=1) if bucket == "day" else timedelta(hours=1)


def time_range(
    now: datetime, since: datetime | None, until: datetime | None, bucket: str
) -> tuple[datetime, datetime, list[datetime]]:
    """Validated range (default: the last 30 days by day, the last 48 hours by hour, up to
    the end of the current day or hour) and the start of every bucket in it, oldest first.

    An empty or reversed range has no bucket. A range longer than `MAX_BUCKETS` buckets is
    cut to its last `MAX_BUCKETS` (the answer's `since` says where it starts): whether a
    range is too long depends on the server's clock when `until` is left out, which no
    client can check beforehand, so it is answered, not refused."""
    if bucket not in BUCKETS:
        raise InvalidInput("unknown bucket", {"bucket": "must be day or hour"})
    # By default up to the end of the current bucket, so that today (this hour) is complete.
    until_ = _utc(until, "until") or _floor(now, bucket) + _step(bucket)
    since_ = _utc(since, "since") or (
        until_ - (timedelta(days=30) if bucket == "day" else timedelta(hours=48))
    )
    if since_ >= until_:
        return since_, until_, []
    last = _floor(until_ - timedelta(microseconds=1), bucket)  # the last bucket's start
    earliest = last - (MAX_BUCKETS - 1) * _step(bucket)
    if since_ < earliest:
        since_ = earliest
    starts: list[datetime] = []
    at = _floor(since_, bucket)
    while at < until_:
        starts.append(at)
        at += _step(bucket)
    return since_, until_, starts


@dataclass(frozen=True, slots=True)
class ClientPurposeReads:
    client: str
    purpose: str | None
    allowed: int
    denied: int

    @property
    def total(self) -> int:
        return self.allowed + self.denied


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class BucketCount:
    start: datetime
    allowed: int = 0
    denied: int = 0

    @property
    def total(self) -> int:
        return self.allowed + self.denied


@dataclass(frozen=True, slots=True)
class AccessStats:
    """Lookups (reads of contact data, allowed and denied) in [since, until)."""

    since: datetime
    until: datetime
    bucket: str
    allowed: int
    denied: int
    by_client_purpose: list[ClientPurposeReads]
    denials_by_reason: list[ReasonCount]
    series: list[BucketCount]

    @property
    def total(self) -> int:
        return self.allowed + self.denied


async def access_stats(
    ctx: VaultContext,
    actor: Actor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: str = "day",
) -> AccessStats:
    """Reads per client and purpose, denials by reason, and counts per time bucket. Audited."""
    now = ctx.clock.now()
    since_, until_, starts = time_range(now, since, until, bucket)
    c = audit_events.c
    scope = and_(c.action == str(AuditAction.LOOKUP), c.at >= since_, c.at < until_)
    async with ctx.transaction() as conn:
        per_client = (
            await conn.execute(
                select(c.actor_id, c.purpose, c.decision, func.count())
                .where(scope)
                .group_by(c.actor_id, c.purpose, c.decision)
            )
        ).all()
        reasons = (
            await conn.execute(
                select(c.reason, func.count())
                .where(scope, c.decision == str(Decision.DENY))
                .group_by(c.reason)
            )
        ).all()
        key = bucket_key(conn, c.at, bucket).label("bucket")
        per_bucket = (
            await conn.execute(
                select(key, c.decision, func.count()).where(scope).group_by(key, c.decision)
            )
        ).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_AUDIT_STATS,
            decision=Decision.ALLOW,
            detail={"since": since_.isoformat(), "until": until_.isoformat(), "bucket": bucket},
        )
    pairs: dict[tuple[str, str | None], list[int]] = {}
    for client, purpose, decision, n in per_client:
        slot = pairs.setdefault((client, purpose), [0, 0])
        slot[0 if decision == Decision.ALLOW else 1] += int(n)
    by_pair = [
        ClientPurposeReads(client, purpose, a, d)
        for (client, purpose), (a, d) in sorted(
            pairs.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0][0], kv[0][1] or "")
        )
    ]
    series_map: dict[datetime, list[int]] = {s: [0, 0] for s in starts}
    for key_text, decision, n in per_bucket:
        start = _bucket_start(str(key_text), bucket)
        slot = series_map.setdefault(start, [0, 0])
        slot[0 if decision == Decision.ALLOW else 1] += int(n)
    return AccessStats(
        since=since_,
        until=until_,
        bucket=bucket,
        allowed=sum(p.allowed for p in by_pair),
        denied=sum(p.denied for p in by_pair),
        by_client_purpose=by_pair,
        denials_by_reason=sorted(
            (ReasonCount(r or "unspecified", int(n)) for r, n in reasons),
            key=lambda rc: (-rc.count, rc.reason),
        ),
        series=[BucketCount(s, a, d) for s, (a, d) in sorted(series_map.items())],
    )


@dataclass(frozen=True, slots=True)
class ConsentBucket:
    start: datetime
    granted: int = 0
    withdrawn: int = 0
    expired: int = 0


@dataclass(frozen=True, slots=True)
class PurposeConsentStats:
    purpose: str
    granted: int
    withdrawn: int
    expired: int
    series: list[ConsentBucket] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConsentStats:
    """Consents (lawful basis `consent`) granted, withdrawn and expired per purpose."""

    since: datetime
    until: datetime
    bucket: str
    purposes: list[PurposeConsentStats]


async def consent_stats(
    ctx: VaultContext,
    actor: Actor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: str = "day",
) -> ConsentStats:
    """Per purpose and time bucket: consents granted (confirmed, for double opt-in),
    withdrawn, and expired (their expiry passed while they were still granted). Audited.

    Every consent purpose of the catalogue is listed, also with zero counts.
    """
    now = ctx.clock.now()
    since_, until_, starts = time_range(now, since, until, bucket)
    c = consents.c
    is_consent = c.basis == "consent"
    counts: dict[str, dict[datetime, list[int]]] = {}
    async with ctx.transaction() as conn:
        for index, column, extra in (
            (0, c.granted_at, None),
            (1, c.withdrawn_at, c.status == "withdrawn"),
            (2, c.expires_at, c.status.in_(("granted", "expired"))),
        ):
            key = bucket_key(conn, column, bucket).label("bucket")
            conds = [is_consent, column >= since_, column < until_]
            if index == 2:
                conds.append(column <= now)
            if extra is not None:
                conds.append(extra)
            rows = (
                await conn.execute(
                    select(c.purpose, key, func.count()).where(*conds).group_by(c.purpose, key)
                )
            ).all()
            for purpose, key_text, n in rows:
                start = _bucket_start(str(key_text), bucket)
                slot = counts.setdefault(purpose, {}).setdefault(start, [0, 0, 0])
                slot[index] += int(n)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_CONSENT_STATS,
            decision=Decision.ALLOW,
            detail={"since": since_.isoformat(), "until": until_.isoformat(), "bucket": bucket},
        )
    purpose_ids = sorted(
        {p.id for p in ctx.catalogue.purposes.values() if p.lawful_basis.value == "consent"}
        | set(counts)
    )
    out: list[PurposeConsentStats] = []
    for pid in purpose_ids:
        per = counts.get(pid, {})
        series = [ConsentBucket(s, *per.get(s, [0, 0, 0])) for s in sorted(set(starts) | set(per))]
        out.append(
            PurposeConsentStats(
                purpose=pid,
                granted=sum(b.granted for b in series),
                withdrawn=sum(b.withdrawn for b in series),
                expired=sum(b.expired for b in series),
                series=series,
            )
        )
    return ConsentStats(since=since_, until=until_, bucket=bucket, purposes=out)


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """The outcome of a full verification of the chain, and the newest signed checkpoint."""

    ok: bool
    verified: int
    unsealed: int
    checkpoints: int
    last_verified_checkpoint: int | None
    broken_seq: int | None
    problem: str | None
    last_checkpoint_position: int | None
    last_checkpoint_seq: int | None
    last_checkpoint_at: datetime | None
    key_id: str | None
    checked_at: datetime


async def chain_status(ctx: VaultContext, actor: Actor) -> ChainStatus:
    """Verify the whole chain (every MAC and checkpoint signature) and report. Audited."""
    report = await audit_verify.verify_chain(ctx)
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        last = (
            await conn.execute(
                select(audit_checkpoints).order_by(audit_checkpoints.c.chain_pos.desc()).limit(1)
            )
        ).first()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_AUDIT_CHAIN,
            decision=Decision.ALLOW,
            detail={
                "ok": report.ok,
                "verified": report.verified,
                "unsealed": report.unsealed,
            }
            | ({"broken_seq": report.broken_seq} if report.broken_seq is not None else {}),
        )
    return ChainStatus(
        ok=report.ok,
        verified=report.verified,
        unsealed=report.unsealed,
        checkpoints=report.checkpoints,
        last_verified_checkpoint=report.last_checkpoint_position,
        broken_seq=report.broken_seq,
        problem=report.problem,
        last_checkpoint_position=last.chain_pos if last else None,
        last_checkpoint_seq=last.seq if last else None,
        last_checkpoint_at=as_utc(last.at) if last else None,
        key_id=last.key_id if last else None,
        checked_at=now,
    )
