"""Per-client quotas: a request rate and a daily number of lookups, across all nodes.

Set with `tresor clients create/update NAME --rate 200/s --daily-lookups 1000000` or the
admin API; both are optional (None: no limit). Counted in the shared counter store
(`vault.admin.limits`: the database, or Redis), in fixed windows: the rate's window is its
unit (1 s, 1 min, 1 h), the lookups' the UTC day.

The hot path must not pay a round trip per request, so each process takes *leases*: it adds
a chunk of the quota to the shared counter at once (one round trip) and spends it locally;
what the shared counter shows beyond the quota is not granted. Hence the tolerance, stated
in docs/operations.md: the quota is never exceeded, but up to `chunk` units per other
process may stay leased and unused when a window ends, so a client can be refused up to
(processes - 1) x chunk early; chunk is 1/50 of the quota (at least 1, at most what one
request asks). Over the quota a process answers from memory until the window ends.

A breach is an audit event, once per client, quota and window on all nodes together (the
first process to count the breach in the shared store writes it), and the caller counts it
as a metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from vault.admin.clients import ClientInfo, Quota
from vault.admin.limits import CounterStore, Window
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.errors import InvalidInput, NotFound, QuotaExceeded
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext

RATE = "rate"
DAILY_LOOKUPS = "daily-lookups"
_UNITS = {"s": 1, "m": 60, "h": 3600}
DAY = 86_400


def parse_rate(text: str) -> tuple[int, int] | None:
    """`200/s`, `1000/m`, `5000/h` as (requests, window seconds); `off` or `0` for none."""
    text = text.strip().lower()
    if text in ("off", "none", "0"):
        return None
    count, _, unit = text.partition("/")
    try:
        requests = int(count)
        window = _UNITS[unit]
    except (KeyError, ValueError):
        requests, window = 0, 0
    if requests < 1 or requests > 999_999_999 or not window:
        raise InvalidInput("bad rate", {"rate": "requests per s, m or h, e.g. 200/s, or off"})
    return requests, window


def format_rate(quota: Quota) -> str:
    if not quota.rate or not quota.window:
        return "-"
    unit = {v: k for k, v in _UNITS.items()}.get(quota.window, f"{quota.window}s")
    return f"{quota.rate}/{unit}"


async def set_quota(
    ctx: VaultContext,
    actor: Actor,
    name: str,
    *,
    rate: tuple[int, int] | None | bool = False,
    daily_lookups: int | None | bool = False,
) -> None:
    """Change the quotas of the active client `name`; `False` leaves one as it is, None
    lifts it. Audited (`admin:client:update`, with the new values)."""
    values: dict[str, int | None] = {}
    if rate is not False:
        pair = rate if isinstance(rate, tuple) else None
        values["rate_limit"], values["rate_window"] = pair if pair else (None, None)
    if daily_lookups is not False:
        if daily_lookups is not None and not (
            isinstance(daily_lookups, int) and 0 <= daily_lookups <= 1_000_000_000
        ):
            raise InvalidInput("bad daily lookups", {"daily_lookups": "0 to 1000000000"})
        values["daily_lookups"] = int(daily_lookups) if daily_lookups else None
    if not values:
        raise InvalidInput("nothing to change", {"quota": "name rate and/or daily_lookups"})
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        result = await conn.execute(
            update(clients)
            .where(clients.c.name == name)
            .where(clients.c.revoked_at.is_(None))
            .values(**values)
        )
        if result.rowcount != 1:
            raise NotFound(f"no active client named {name}")
        row = (await conn.execute(select(clients).where(clients.c.name == name))).one()
        quota = Quota(row.rate_limit, row.rate_window, row.daily_lookups)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CLIENT_UPDATE,
            decision=Decision.ALLOW,
            detail={
                "client": name,
                "rate": format_rate(quota),
                "daily_lookups": quota.daily_lookups,
            },
        )


@dataclass(slots=True)
class _Lease:
    window: int
    tokens: int = 0
    seen: int = 0  # the shared count after this process's last lease
    exhausted: bool = False
    reported: bool = False


class QuotaGate:
    """One per process: the leases of every client's quotas (see the module doc)."""

    def __init__(self, ctx: VaultContext, store: CounterStore) -> None:
        self._ctx = ctx
        self._store = store
        self._leases: dict[str, _Lease] = {}

    async def request(self, client: ClientInfo, request_id: str | None) -> None:
        """Take one request of the client's rate; raises `QuotaExceeded` over it."""
        q = client.quota
        if q.rate and q.window:
            await self._take(client, RATE, q.rate, q.window, 1, request_id)

    async def lookups(self, client: ClientInfo, count: int, request_id: str | None) -> None:
        """Take `count` lookups of the client's daily quota; raises `QuotaExceeded` over it
        (then none of them is taken)."""
        if client.quota.daily_lookups:
            await self._take(
                client, DAILY_LOOKUPS, client.quota.daily_lookups, DAY, count, request_id
            )

    async def _take(
        self,
        client: ClientInfo,
        policy: str,
        quota: int,
        seconds: int,
        amount: int,
        request_id: str | None,
    ) -> None:
        now = self._ctx.clock.now()
        window = Window.at(now, seconds)
        key = f"{policy}:{client.id}"
        lease = self._leases.get(key)
        if lease is None or lease.window != window.start:
            if len(self._leases) > 50_000:
                self._leases.clear()
            lease = self._leases[key] = _Lease(window.start)
        if lease.tokens < amount and not lease.exhausted:
            chunk = max(amount - lease.tokens, math.ceil(quota / 50))
            total = await self._store.add(key, window, chunk)
            granted = max(0, min(chunk, quota - (total - chunk)))
            lease.tokens += granted
            lease.seen = total
            lease.exhausted = lease.tokens < amount
        if lease.tokens >= amount:
            lease.tokens -= amount
            return
        remaining = max(0, quota - lease.seen) + lease.tokens
        if not lease.reported:
            await self._report(client, policy, quota, window, request_id, now)
            lease.reported = True
        raise QuotaExceeded(client.name, policy, quota, seconds, remaining, window.remaining(now))

    async def _report(
        self,
        client: ClientInfo,
        policy: str,
        quota: int,
        window: Window,
        request_id: str | None,
        now: datetime,
    ) -> None:
        """The breach's audit event, written by the first process (on any node) to count
        it in this window. Fails closed: without the event the refusal is a 503."""
        first = await self._store.add(f"breach:{policy}:{client.id}", window, 1) == 1
        if not first:
            return
        row = audit.event_row(
            at=now,
            actor=Actor(client.actor_type, client.name, request_id),
            action=AuditAction.CLIENT_QUOTA_EXCEEDED,
            decision=Decision.DENY,
            reason="quota_exceeded",
            detail={
                "quota": policy,
                "limit": quota,
                "window_seconds": window.seconds,
                "window_start": datetime.fromtimestamp(window.start, UTC).isoformat(),
            },
        )
        async with self._ctx.transaction() as conn:
            await audit.record_row(conn, row)


__all__ = [
    "DAILY_LOOKUPS",
    "RATE",
    "QuotaGate",
    "format_rate",
    "parse_rate",
    "set_quota",
]
