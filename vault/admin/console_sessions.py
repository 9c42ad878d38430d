"""Console sessions: opened by a DPO's or a marketer's API key or by single sign-on, ended
by sign-out, revocation of the key, the idle or the absolute timeout, on every node at once.

A session carries the role it was opened with (`dpo` or `marketing`, issue 21): the console
shows a marketer only campaigns, the calendar and reports, and every DPO page refuses them
(`api.dpo.session.require_session`). A key-based session whose client's role changed since
is ended like a revoked one, so a role is never widened by an open session.

A session is a `web_sessions` row of kind "console" (`vault.storage.sessions`): the cookie
carries a random id, the row its keyed digest. Every console request reads that row joined
with its API client in one indexed statement; a session whose client was revoked or lost
its role is refused and marked ended ("revoked") on the spot, so no cache or signed token
keeps a console open anywhere. A session opened by single sign-on has no client row: the
identity provider vouched for the role at sign-in (kept on the row); it ends like any
other by sign-out or the timeouts.

Sign-in attempts are limited per account and per address across nodes
(`console_signins`), and each attempt, allowed or refused, and each sign-out is audited;
no session is opened unless its audit event is written in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select

from vault.admin.authentication import ROLE_NOT_ALLOWED
from vault.admin.clients import ClientInfo, Role
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.crypto import KeyLabel
from vault.errors import RateLimited
from vault.storage import sessions as web
from vault.storage.rights_tables import console_signins, web_sessions
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext

SIGNIN_WINDOW = web.SIGNIN_WINDOW
#: Trail reasons of a refused sign-in.
INVALID_KEY = "invalid_key"
RATE_LIMITED = "rate_limited"
#: The actor of a sign-in nobody can be named for (a wrong key).
UNKNOWN = Actor("anonymous", "console-signin")
#: The roles that may open a console session.
CONSOLE_ROLES = frozenset({Role.DPO, Role.MARKETING})


def actor_for(role: Role, account: str, request_id: str | None) -> Actor:
    """A console user on the trail: a DPO as `dpo`, a marketer as a `client` (as through
    the API)."""
    return Actor("dpo" if role is Role.DPO else "client", account, request_id)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live console session: who (the actor name on the trail) and until when at most."""

    account: str
    expires_at: datetime
    client_id: str | None
    role: Role = Role.DPO


def lifetime(ctx: VaultContext) -> web.Lifetime:
    """The console's idle (TRESOR_SESSION_IDLE_MINUTES) and absolute
    (TRESOR_CONSOLE_SESSION_HOURS) timeouts."""
    return web.Lifetime(
        idle=timedelta(minutes=ctx.settings.session_idle_minutes),
        absolute=timedelta(hours=ctx.settings.console_session_hours),
    )


def _keyed(ctx: VaultContext, label: str, value: str) -> str:
    return ctx.keys.mac(KeyLabel.CONSOLE_SIGNIN).digest(f"{label}\x00{value}".encode())


# -- sign-in limits ------------------------------------------------------------------------


async def check_signin_allowed(
    ctx: VaultContext,
    address: str,
    request_id: str | None,
    *,
    account: str | None = None,
    name: str | None = None,
) -> None:
    """Raise `RateLimited` while the address or the account (a client's id or `sso:<sub>`;
    `name` is its actor on the trail) has used up its sign-in attempts of the window
    (TRESOR_CONSOLE_SIGNIN_PER_ADDRESS / _PER_ACCOUNT); the refusal is audited and counted
    like any other attempt."""
    now = ctx.clock.now()
    since = now - SIGNIN_WINDOW
    address_hash = _keyed(ctx, "address", address)
    account_hash = _keyed(ctx, "account", account) if account else None
    async with ctx.transaction() as conn:
        by_address = (
            await conn.execute(
                select(func.count(), func.min(console_signins.c.at)).where(
                    and_(
                        console_signins.c.address_hash == address_hash, console_signins.c.at > since
                    )
                )
            )
        ).one()
        by_account: Any = (0, None)
        if account_hash is not None:
            by_account = (
                await conn.execute(
                    select(func.count(), func.min(console_signins.c.at)).where(
                        and_(
                            console_signins.c.account_hash == account_hash,
                            console_signins.c.at > since,
                        )
                    )
                )
            ).one()
        limits = (
            (by_address, ctx.settings.console_signin_per_address),
            (by_account, ctx.settings.console_signin_per_account),
        )
        over = [oldest for (count, oldest), limit in limits if count >= limit]
        if not over:
            return
        await _attempt_in(ctx, conn, now, address, account, ok=False)
        await audit.record(
            conn,
            at=now,
            actor=Actor("dpo", name or account or "", request_id)
            if account
            else Actor(UNKNOWN.type, UNKNOWN.id, request_id),
            action=AuditAction.DPO_SESSION_START,
            decision=Decision.DENY,
            reason=RATE_LIMITED,
        )
    oldest = min(_aware(o, now) for o in over)
    retry = max(1, int((oldest + SIGNIN_WINDOW - now).total_seconds()) + 1)
    raise RateLimited("too many console sign-ins; try again later", retry)


def _aware(value: datetime | None, now: datetime) -> datetime:
    """A timestamp read back from the database, as an aware UTC datetime (SQLite drops the
    zone); `now` when there is none."""
    return as_utc(value) if value is not None else now


async def _attempt_in(
    ctx: VaultContext, conn: Any, now: datetime, address: str, account: str | None, *, ok: bool
) -> None:
    await conn.execute(
        insert(console_signins).values(
            at=now,
            account_hash=_keyed(ctx, "account", account) if account else None,
            address_hash=_keyed(ctx, "address", address),
            ok=ok,
        )
    )


async def refuse_signin(
    ctx: VaultContext,
    address: str,
    request_id: str | None,
    *,
    client: ClientInfo | None = None,
    account: str | None = None,
    reason: str = INVALID_KEY,
) -> None:
    """Count and audit a refused sign-in: a wrong key (nobody to name), a client without a
    console role, or a single sign-on user the provider did not vouch for."""
    now = ctx.clock.now()
    name = client.name if client is not None else account
    async with ctx.transaction() as conn:
        await _attempt_in(ctx, conn, now, address, client.id if client else account, ok=False)
        await audit.record(
            conn,
            at=now,
            actor=Actor(client.actor_type, client.name, request_id)
            if client is not None
            else (
                Actor("dpo", name, request_id)
                if name
                else Actor(UNKNOWN.type, UNKNOWN.id, request_id)
            ),
            action=AuditAction.DPO_SESSION_START,
            decision=Decision.DENY,
            reason=ROLE_NOT_ALLOWED if client is not None else reason,
        )


# -- opening, reading, ending -----------------------------------------------------------------


async def open_session(
    ctx: VaultContext,
    address: str,
    request_id: str | None,
    *,
    client: ClientInfo | None = None,
    sso_subject: str | None = None,
    sso_role: Role = Role.DPO,
) -> tuple[str, ConsoleSession]:
    """Open a console session for a DPO or marketing client or a single sign-on user the
    provider vouched for (with `sso_role`); returns the cookie's session id (shown once) and
    the session. The sign-in event is written in the same transaction: no event, no
    session."""
    if (client is None) == (sso_subject is None):
        raise ValueError("a console session is a client's or a single sign-on user's")
    role = client.role if client is not None else sso_role
    if role not in CONSOLE_ROLES:
        raise ValueError("only a DPO or a marketer opens a console session")
    account = client.name if client is not None else f"sso:{sso_subject}"[:120]
    now = ctx.clock.now()
    token = web.new_token()
    async with ctx.transaction() as conn:
        expires = await web.open_in(
            conn,
            digest=ctx.keys.mac(KeyLabel.DPO_SESSION).digest(token.encode()),
            kind=web.Kind.CONSOLE,
            now=now,
            lifetime=lifetime(ctx),
            client_id=client.id if client else None,
            account=account,
            role=role.value,
        )
        await _attempt_in(ctx, conn, now, address, client.id if client else account, ok=True)
        await audit.record(
            conn,
            at=now,
            actor=actor_for(role, account, request_id),
            action=AuditAction.DPO_SESSION_START,
            decision=Decision.ALLOW,
            detail={
                "expires_at": expires.isoformat(),
                "via": "api_key" if client is not None else "sso",
                "role": role.value,
            },
        )
    return token, ConsoleSession(account, expires, client.id if client else None, role)


async def read_session(ctx: VaultContext, token: str | None) -> ConsoleSession | None:
    """The live console session of a cookie's id, or None. One indexed read (the session
    joined with its client); a lapsed session or one whose client was revoked or no longer
    has the session's role is marked ended with the reason, a live one has its activity recorded."""
    if token is None or not web.well_formed(token):
        return None
    now = ctx.clock.now()
    digest = ctx.keys.mac(KeyLabel.DPO_SESSION).digest(token.encode())
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(
                    web_sessions.c.account,
                    web_sessions.c.client_id,
                    web_sessions.c.expires_at,
                    web_sessions.c.last_seen_at,
                    web_sessions.c.ended_at,
                    web_sessions.c.ended_why,
                    web_sessions.c.role.label("session_role"),
                    clients.c.role,
                    clients.c.revoked_at.label("client_revoked_at"),
                )
                .select_from(
                    web_sessions.outerjoin(clients, clients.c.id == web_sessions.c.client_id)
                )
                .where(web_sessions.c.token_hash == digest)
                .where(web_sessions.c.kind == web.Kind.CONSOLE.value)
            )
        ).first()
        if row is None:
            return None
        why = web.lapsed(row, now, lifetime(ctx))
        role = _role_of(row.session_role)
        if why is None and (
            role is None
            or (
                row.client_id is not None
                and (row.client_revoked_at is not None or row.role != role.value)
            )
        ):
            why = web.Ended.REVOKED
        if why is not None:
            if row.ended_at is None:
                await web.end_in(conn, digest, now, why)
            return None
        await web.touch_in(conn, digest, row.last_seen_at, now)
    return ConsoleSession(
        str(row.account), _aware(row.expires_at, now), row.client_id, role or Role.DPO
    )


def _role_of(value: str | None) -> Role | None:
    """The role a console row was opened with: none kept is a DPO's (rows before
    migration 0034); anything else than a console role is no session (fail closed)."""
    if value is None:
        return Role.DPO
    try:
        role = Role(value)
    except ValueError:
        return None
    return role if role in CONSOLE_ROLES else None


async def end_session(ctx: VaultContext, token: str | None, request_id: str | None) -> bool:
    """Sign out: end the session (every node refuses its id from the next request on) and
    put it on record. Idempotent: an unknown or ended id changes nothing and is no error."""
    if token is None or not web.well_formed(token):
        return False
    now = ctx.clock.now()
    digest = ctx.keys.mac(KeyLabel.DPO_SESSION).digest(token.encode())
    async with ctx.transaction() as conn:
        account = (
            await conn.execute(
                select(web_sessions.c.account, web_sessions.c.role)
                .where(web_sessions.c.token_hash == digest)
                .where(web_sessions.c.kind == web.Kind.CONSOLE.value)
                .where(web_sessions.c.ended_at.is_(None))
            )
        ).first()
        if account is None:
            return False
        await web.end_in(conn, digest, now, web.Ended.SIGNED_OUT)
        await audit.record(
            conn,
            at=now,
            actor=actor_for(_role_of(account.role) or Role.DPO, account.account, request_id),
            action=AuditAction.DPO_SESSION_END,
            decision=Decision.ALLOW,
        )
    return True
