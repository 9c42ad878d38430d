"""Delivering notices: claim due deliveries, send them, record the outcome.

At least once: a claim sets a lease (`next_attempt_at` moves past the send timeout) and
counts the attempt in one short transaction; the send happens outside any transaction;
the outcome is written afterwards. A node that dies mid-send leaves the lease to run out,
and another node sends again with the same id (`webhook-id`, `Nats-Msg-Id`), which the
receiver de-duplicates. Claims take `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
nodes never take the same delivery at once; SQLite has one writer.

Per recipient and subject, notices go in event order: a delivery is not claimed while an
earlier one for the same recipient and subject is still pending. A failure is retried
with exponential back-off and jitter; after `GIVE_UP` (3 days from the notice's creation,
which a replay keeps: see `acks.replay`) it is `failed`, which the DPO sees. A paused
recipient's notices wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from vault.clock import as_utc
from vault.recipients.delivery_claims import SigningKeys, claim_due
from vault.recipients.delivery_outcomes import Outcome, write_outcomes
from vault.recipients.events import OUTBOX_CHANNEL
from vault.recipients.fanout import fan_out
from vault.recipients.transports import NatsNotice, NatsTransport, WebhookTransport
from vault.storage.listen import ChannelListener

if TYPE_CHECKING:
    from vault.context import VaultContext

GIVE_UP = timedelta(days=3)
BATCH = 500
#: Sends in flight at once per node (each recipient also has its own bound,
#: `transports.PER_RECIPIENT`).
CONCURRENCY = 32
#: Claim-send-record passes per run at most, so one run ends and the next can fan out.
MAX_PASSES = 1000
#: How long a round with nothing to claim waits for the fan-out running beside it.
FAN_OUT_POLL_SECONDS = 0.02


def backoff(attempts: int, first: float = 5.0, cap: float = 3600.0) -> timedelta:
    """The wait after the `attempts`-th failed attempt: doubling from `first` seconds up to
    `cap`, times a jitter of 0.5 to 1.5 so retries of many deliveries do not arrive
    together (TRESOR_NOTIFY_RETRY_SECONDS, TRESOR_NOTIFY_RETRY_MAX_SECONDS)."""
    base = timedelta(seconds=min(first * (2 ** min(max(0, attempts - 1), 40)), cap))
    jitter = 0.5 + secrets.randbelow(1001) / 1000
    return base * jitter


def payload(event: Any, delivery_id: str, public_url: str) -> bytes:
    """The notice: ids, purposes, field names and times only, never a value."""
    return _Notice.of(event).body(delivery_id, public_url)


@dataclass(frozen=True, slots=True)
class _Notice:
    """What every delivery of one event says, decoded once per event (an event goes to
    several recipients); `body` adds the delivery's own id."""

    type: str
    event_id: str
    subject_id: str
    purposes: list[str]
    fields: list[str] | None
    occurred_at: str

    @classmethod
    def of(cls, event: Any, event_id: str | None = None) -> _Notice:
        """From an event row (or a claimed row with the event's id given apart)."""
        return cls(
            type=event.type,
            event_id=event.id if event_id is None else event_id,
            subject_id=event.subject_id,
            purposes=msgspec.json.decode(event.purposes),
            fields=msgspec.json.decode(event.fields) if event.fields is not None else None,
            occurred_at=as_utc(event.occurred_at).isoformat(),
        )

    def body(self, delivery_id: str, public_url: str) -> bytes:
        data: dict[str, Any] = {
            "notification_id": delivery_id,
            "event_id": self.event_id,
            "subject_id": self.subject_id,
            "purposes": self.purposes,
            "occurred_at": self.occurred_at,
            "ack_url": f"{public_url}/v1/notifications/{delivery_id}/ack",
        }
        if self.fields is not None:
            data["fields"] = self.fields
        body = {"type": self.type, "timestamp": self.occurred_at, "data": data}
        # Keys sorted, no spaces: a retry sends the same bytes as the first attempt.
        return msgspec.json.encode(body, order="sorted")


@dataclass(frozen=True, slots=True)
class _Claim:
    id: str
    attempts: int
    created_at: datetime
    occurred_at: datetime
    recipient_id: str
    recipient: str
    transport: str
    target: str
    event_type: str
    body: bytes
    keys: list[bytes]


@dataclass(frozen=True, slots=True)
class RunReport:
    fanned_out: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0


class DeliveryObserver(Protocol):
    """What the deliverer tells about its work, per recipient name (never a subject id or
    any value): the API layer turns it into Prometheus metrics."""

    def queued(self, counts: Mapping[str, int]) -> None: ...

    def delivered(self, recipient: str, lag_seconds: float) -> None: ...

    def retried(self, recipient: str) -> None: ...

    def failed(self, recipient: str) -> None: ...


def outbox_listener(ctx: VaultContext) -> ChannelListener:
    """What wakes the deliverer when a change with domain events commits (PostgreSQL
    LISTEN/NOTIFY, sent by `events.emit`); polling at the job's interval stays behind it."""
    return ChannelListener(lambda: ctx.engine, OUTBOX_CHANNEL)


class Deliverer:
    """One per process: the transports (an HTTP pool per recipient, a NATS connection) and
    the loop."""

    def __init__(
        self,
        ctx: VaultContext,
        *,
        observer: DeliveryObserver | None = None,
        webhooks: WebhookTransport | None = None,
    ) -> None:
        self._ctx = ctx
        self._observer = observer
        timeout = ctx.settings.notify_timeout_seconds
        self.webhooks = webhooks or WebhookTransport(
            allow_private=ctx.settings.webhook_allow_private, timeout=timeout
        )
        self.nats = NatsTransport(ctx.settings.nats_url, timeout)
        #: How long a claimed delivery is reserved for its node: longer than any send, so
        #: two nodes never send it at once; after a crash another node takes it over then.
        self.lease = timedelta(seconds=timeout * 3)
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self._keys = SigningKeys(ctx)

    async def close(self) -> None:
        await self.webhooks.close()
        await self.nats.close()

    async def run(self, *, batch: int = BATCH) -> RunReport:
        """Fan out new events, then deliver due notices until none is left in this round.

        The next batch is claimed while the current one is being sent: a claimed notice
        stays `pending` (its lease moved `next_attempt_at` on), so it is not claimed twice
        and still holds back later notices for its recipient and subject. A claim that
        overlapped sends and found nothing is repeated once those sends are recorded,
        because they may have released notices that waited behind them."""
        on_queued = self._observer.queued if self._observer is not None else None

        async def fan_out_all() -> int:
            fanned = 0
            while (n := await fan_out(self._ctx, batch=batch, on_queued=on_queued)) > 0:
                fanned += n
            return fanned

        # Fan-out runs beside the sends: a large change (thousands of erasures in one
        # transaction) starts reaching receivers after its first fan-out batch, not after
        # the last. Fan-out goes in event order and commits batch by batch, so a notice is
        # never claimed before an earlier one for its recipient and subject exists.
        fanning = asyncio.ensure_future(fan_out_all())
        totals = [0, 0, 0]
        try:
            claims = await self._claim(batch)
            for _ in range(MAX_PASSES):
                if not claims:
                    if fanning.done():
                        break
                    await asyncio.wait([fanning], timeout=FAN_OUT_POLL_SECONDS)
                    claims = await self._claim(batch)
                    continue
                next_claims = asyncio.ensure_future(self._claim(batch))
                try:
                    errors = await self._send_all(claims)
                    counts = await self._record(claims, errors)
                finally:
                    following = await next_claims
                totals = [a + b for a, b in zip(totals, counts, strict=True)]
                claims = following or await self._claim(batch)
            fanned = await fanning
        finally:
            if not fanning.done():
                fanning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fanning
        return RunReport(fanned, *totals)

    async def _send_all(self, claims: list[_Claim]) -> list[str | None]:
        """Every claim's outcome, in order: the NATS notices as one batch whose publish
        acknowledgements are awaited together, the webhooks beside it by a few workers
        per recipient (as many as its connections), each taking the recipient's next
        notice when its last one is answered. Workers, not a task per notice: with a
        task per notice, `create_task` alone was about 5 % of the sender's samples. A
        batch holds at most one notice per recipient and subject (`_claim`), so workers
        running side by side cannot reorder a subject's notices."""
        errors: list[str | None] = [None] * len(claims)
        on_bus = [i for i, c in enumerate(claims) if c.transport == "nats"]
        per_recipient: dict[str, list[int]] = {}
        for i, c in enumerate(claims):
            if c.transport != "nats":
                per_recipient.setdefault(c.recipient_id, []).append(i)

        async def bus() -> None:
            notices = [
                NatsNotice(claims[i].target, claims[i].event_type, claims[i].id, claims[i].body)
                for i in on_bus
            ]
            for i, error in zip(on_bus, await self.nats.send_batch(notices), strict=True):
                errors[i] = error

        async def worker(queue: Iterator[int]) -> None:
            for i in queue:
                async with self._gate:
                    errors[i] = await self._send(claims[i])

        workers = []
        for indices in per_recipient.values():
            queue = iter(indices)  # shared by the recipient's workers
            count = min(self.webhooks.per_recipient, len(indices))
            workers += [worker(queue) for _ in range(count)]
        await asyncio.gather(bus(), *workers)
        return errors

    async def _send(self, claim: _Claim) -> str | None:
        if claim.transport == "nats":
            return await self.nats.send(claim.target, claim.event_type, claim.id, claim.body)
        now = int(self._ctx.clock.now().timestamp())
        return await self.webhooks.send(
            claim.target, claim.id, claim.body, claim.keys, now, recipient=claim.recipient_id
        )

    async def _claim(self, batch: int) -> list[_Claim]:
        ctx = self._ctx
        now = ctx.clock.now()
        async with ctx.transaction() as conn:
            rows = await claim_due(conn, now, now + self.lease, batch)
            if not rows:
                return []
            keys = await self._keys.read(
                conn, {r.recipient_id for r in rows if r.transport == "webhook"}, now
            )
        public_url = ctx.settings.public_url
        notices: dict[int, _Notice] = {}
        for r in rows:
            if r.event_seq not in notices:
                notices[r.event_seq] = _Notice.of(r, r.event_id)
        return [
            _Claim(
                id=r.id,
                attempts=r.attempts,
                created_at=as_utc(r.created_at),
                occurred_at=as_utc(r.occurred_at),
                recipient_id=r.recipient_id,
                recipient=r.recipient,
                transport=r.transport,
                target=r.target,
                event_type=r.type,
                body=notices[r.event_seq].body(r.id, public_url),
                keys=keys.get(r.recipient_id, []),
            )
            for r in rows
        ]

    async def _record(self, claims: list[_Claim], errors: list[str | None]) -> tuple[int, int, int]:
        ctx = self._ctx
        now = ctx.clock.now()
        done: list[Outcome] = []
        retry: list[Outcome] = []
        gone: list[Outcome] = []
        for claim, error in zip(claims, errors, strict=True):
            if error is None:
                done.append(Outcome(claim.id, claim.attempts, now, None))
            elif now - claim.created_at >= GIVE_UP:
                gone.append(Outcome(claim.id, claim.attempts, now, error))
            else:
                wait = backoff(
                    claim.attempts,
                    ctx.settings.notify_retry_seconds,
                    ctx.settings.notify_retry_max_seconds,
                )
                retry.append(Outcome(claim.id, claim.attempts, now + wait, error))
        async with ctx.transaction() as conn:
            for status, outcomes in (("delivered", done), ("pending", retry), ("failed", gone)):
                if outcomes:
                    await write_outcomes(conn, status, outcomes)
        if self._observer is not None:
            self._observe(self._observer, claims, errors, {o.id for o in gone}, now)
        return len(done), len(retry), len(gone)

    @staticmethod
    def _observe(
        observer: DeliveryObserver,
        claims: list[_Claim],
        errors: list[str | None],
        gone: set[str],
        now: datetime,
    ) -> None:
        for claim, error in zip(claims, errors, strict=True):
            if error is None:
                observer.delivered(claim.recipient, (now - claim.occurred_at).total_seconds())
            elif claim.id in gone:
                observer.failed(claim.recipient)
            else:
                observer.retried(claim.recipient)
