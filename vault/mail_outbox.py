"""The mail outbox: mail is queued in the transaction of the change that causes it and sent
from the queue with retries, so a mail server outage delays mail instead of losing it (and
a rolled-back change sends nothing).

- `queue` (inside the caller's transaction) seals the message as it will leave (`as_sent`:
  `Date` and `Message-ID` are fixed now, so every attempt sends the same mail and a
  receiver sees one Message-ID however often it was tried) and writes a `pending` row.
  The transaction remembers the row (`after_commit`), and `VaultContext.transaction` makes
  the first attempt right after the commit: a mail server that is up gets the mail while
  the request is still being answered, as before; one that is down makes the request no
  slower to fail, and the answer is 2xx because the mail is durable.
- `MailSender.run` (the `mail` job: in the jobs process on PostgreSQL, inside `serve` on
  SQLite, like the recipients' deliveries) sends what is due. A claim takes the rows
  `FOR UPDATE SKIP LOCKED` on PostgreSQL and moves `next_attempt_at` past the send timeout
  (its lease) in one short transaction; the SMTP session runs outside any transaction; the
  outcome is written afterwards. So two nodes never send one row at once, and a node that
  dies mid-send leaves the lease to run out (the mail may then go twice, with the same
  Message-ID, which receivers de-duplicate).
- A failed attempt is retried with exponential back-off and jitter until `give_up_at`
  (`TRESOR_MAIL_RETRY_HOURS`, 24 h, for notices; the code's expiry for a sign-in code,
  which is never sent late), then the row is `failed`: counted for the DPO's queue page
  and on /metrics (`tresor_mail_outbox{status}`; no address in any label).

Why the whole message is sealed rather than a template id and its parameters: the bodies
carry sign-in codes, confirmation links and (for extension notices) the DPO's reason, and
the headers the address; re-rendering later would also change the mail between attempts
(a template or footer edited meanwhile). The key is derived from the keyring's server
secret (`KeyLabel.MAIL_OUTBOX`) and each seal is bound to its row id.

What is left at rest, and for how long (`sealed`):
- wiped when the mail is sent, or discarded by a DPO (`vault.mail_outbox_review`);
- wiped when a mail fails that no one may send again: a sign-in code (never sent late,
  not even by a DPO) or a mail past `valid_until` (its confirmation deadline);
- kept for a failed mail whose content still means something (a notice, a confirmation
  link still valid), so a DPO can retry it once the mail server is fixed: until it is
  retried and sent, discarded, its `valid_until` passes (the retention sweep, `prune`,
  wipes it then), or the row's own retention ends (`KEEP_DONE`, 30 days after it failed:
  the existing rule for outbox rows; `TRESOR_OUTBOX_HOURS` is the development file
  outbox's, which holds plaintext and is not this table). We chose the row's retention
  over a shorter one because a failed Art. 12(3) extension or Art. 18(3) notice must
  still reach the customer when the server is back days later, and the seal is as
  protected as any pending mail's;
- an erasure deletes all the subject's rows (`forget_subjects`), so crypto-shredding the
  subject leaves no address behind in the outbox.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.clock import as_utc
from vault.crypto import KeyLabel, open_message, seal_message
from vault.mail import as_sent
from vault.storage.dialect import skip_locked
from vault.storage.mail_tables import mail_outbox
from vault.storage.wakeup import wake_after_commit

if TYPE_CHECKING:
    from vault.context import VaultContext

log = structlog.get_logger("tresor.mail")

#: The PostgreSQL channel a queued mail's commit notifies (wakes the sender at once).
MAIL_CHANNEL = "tresor_mail_outbox"
#: Where a transaction keeps the ids of the mails it queued (`after_commit`).
_QUEUED = "tresor_mail_queued"
#: Mails claimed per pass of a run.
BATCH = 50
#: Passes per run at most, so one run ends.
MAX_PASSES = 100
#: A claimed mail is reserved this long: longer than the SMTP timeout of any session.
LEASE = timedelta(seconds=60)
STATUSES = ("pending", "sent", "failed", "discarded")
#: Kinds never sent again once failed: a sign-in code is never sent late.
NEVER_RETRIED = frozenset({"signin"})
#: How long the rows of mails sent or given up stay (for the counts), then `prune` deletes them.
KEEP_DONE = timedelta(days=30)


def _key(ctx: VaultContext) -> bytes:
    return ctx.keys.key(KeyLabel.MAIL_OUTBOX)


async def queue(
    ctx: VaultContext,
    conn: AsyncConnection,
    message: EmailMessage,
    *,
    kind: str,
    subject_id: str | None,
    give_up_at: datetime | None = None,
) -> str:
    """Queue `message` in the caller's transaction; returns the row id. `give_up_at`: when
    the mail's content stops meaning something (a sign-in code's expiry, a confirmation
    deadline; kept as `valid_until`): never sent after it, not even by a DPO's retry. The
    retries end `TRESOR_MAIL_RETRY_HOURS` from now at the latest."""
    now = ctx.clock.now()
    mail_id = str(uuid.uuid4())
    sent = as_sent(message, now, ctx.controller.mail_footer)
    limit = now + timedelta(hours=ctx.settings.mail_retry_hours)
    await conn.execute(
        mail_outbox.insert().values(
            id=mail_id,
            subject_id=subject_id,
            kind=kind,
            language=str(message.get("Content-Language") or "de,en")[:16],
            sealed=seal_message(_key(ctx), mail_id, bytes(sent)),
            status="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            give_up_at=min(limit, give_up_at) if give_up_at is not None else limit,
            last_error=None,
            sent_at=None,
            valid_until=give_up_at,
        )
    )
    schedule(conn, mail_id)
    return mail_id


def schedule(conn: AsyncConnection, mail_id: str) -> None:
    """Have the mail `mail_id` (pending, due now) tried right after `conn`'s transaction
    commits, and wake the other nodes' senders (a queued mail, a DPO's retry)."""
    wake_after_commit(conn, MAIL_CHANNEL)
    queued = conn.info.get(_QUEUED)
    if isinstance(queued, list):
        queued.append(mail_id)


def track(conn: AsyncConnection) -> list[str]:
    """Start collecting the ids of the mails queued in `conn`'s transaction (called by
    `VaultContext.transaction`, which sends them after the commit)."""
    queued: list[str] = []
    conn.info[_QUEUED] = queued
    return queued


def untrack(conn: AsyncConnection) -> None:
    """Stop collecting (the connection goes back to the pool)."""
    conn.info.pop(_QUEUED, None)


async def forget_subjects(conn: AsyncConnection, ids: list[str]) -> int:
    """Delete the mails of the subjects `ids` (an erasure): pending ones are never sent, and
    no sealed address of theirs stays behind. Returns how many rows went."""
    result = await conn.execute(delete(mail_outbox).where(mail_outbox.c.subject_id.in_(ids)))
    return int(result.rowcount or 0)


async def prune(ctx: VaultContext, before: datetime) -> int:
    """Delete the rows of mails sent, failed or discarded before `before` (the retention
    sweep), and wipe the sealed message of failed mails whose content went stale
    (`valid_until` passed: no DPO may retry them any more). Returns the rows deleted."""
    m = mail_outbox
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        result = await conn.execute(
            delete(m)
            .where(m.c.status.in_(("sent", "failed", "discarded")))
            .where(func.coalesce(m.c.sent_at, m.c.give_up_at) < before)
        )
        await conn.execute(
            update(m)
            .where(m.c.status == "failed")
            .where(m.c.sealed.is_not(None))
            .where(m.c.valid_until <= now)
            .values(sealed=None)
        )
    return int(result.rowcount or 0)


def retriable(kind: str, valid_until: datetime | None, now: datetime) -> bool:
    """Whether a failed mail of `kind` still means something at `now`: not a sign-in code,
    and not past its `valid_until` (a confirmation deadline)."""
    return kind not in NEVER_RETRIED and (valid_until is None or as_utc(valid_until) > now)


async def counts(ctx: VaultContext) -> dict[str, int]:
    """How many mails are pending, sent and failed (the DPO's queue page, /metrics)."""
    out = dict.fromkeys(STATUSES, 0)
    async with ctx.engine.connect() as conn:
        rows = await conn.execute(
            select(mail_outbox.c.status, func.count()).group_by(mail_outbox.c.status)
        )
        for status, n in rows.all():
            out[str(status)] = int(n)
    return out


def backoff(attempts: int, first: float, cap: float) -> timedelta:
    """The wait after the `attempts`-th failed attempt: doubling from `first` seconds up to
    `cap`, times a jitter of 0.5 to 1.5 so a queue that built up during an outage does not
    hit the server all at once when it is back."""
    base = min(first * (2 ** min(max(0, attempts - 1), 40)), cap)
    return timedelta(seconds=base * (0.5 + secrets.randbelow(1001) / 1000))


@dataclass(frozen=True, slots=True)
class _Claim:
    id: str
    attempts: int
    give_up_at: datetime
    message: EmailMessage | None
    kind: str = "signin"
    valid_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class SendReport:
    """Counts of one run (logged and on /metrics; never an id or address)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


class MailSender:
    """Sends due mails of the outbox (see the module docstring)."""

    def __init__(self, ctx: VaultContext) -> None:
        self._ctx = ctx

    async def run(self) -> SendReport:
        """Send everything due now, in passes of `BATCH`."""
        total = SendReport()
        for _ in range(MAX_PASSES):
            claims = await self._claim(None)
            if not claims:
                break
            report = await self._send_all(claims)
            total = SendReport(
                total.sent + report.sent,
                total.retried + report.retried,
                total.failed + report.failed,
            )
        return total

    async def send_now(self, ids: list[str]) -> SendReport:
        """The first attempt of mails just committed (`VaultContext.transaction`)."""
        claims = await self._claim(ids)
        return await self._send_all(claims) if claims else SendReport()

    async def _claim(self, ids: list[str] | None) -> list[_Claim]:
        ctx = self._ctx
        now = ctx.clock.now()
        m = mail_outbox
        stmt = (
            select(m.c.id, m.c.attempts, m.c.give_up_at, m.c.sealed, m.c.kind, m.c.valid_until)
            .where(m.c.status == "pending")
            .where(m.c.next_attempt_at <= now)
            .order_by(m.c.next_attempt_at)
            .limit(BATCH)
        )
        if ids is not None:
            stmt = stmt.where(m.c.id.in_(ids))
        async with ctx.transaction() as conn:
            stmt = skip_locked(conn, stmt, of=m)
            rows = (await conn.execute(stmt)).all()
            if not rows:
                return []
            await conn.execute(
                update(m)
                .where(m.c.id.in_([r.id for r in rows]))
                .values(next_attempt_at=now + LEASE, attempts=m.c.attempts + 1)
            )
        key = _key(ctx)
        claims = []
        for r in rows:
            message = None
            if r.sealed is not None and as_utc(r.give_up_at) > now:
                raw = open_message(key, r.id, bytes(r.sealed))
                message = BytesParser(_class=EmailMessage, policy=policy.default).parsebytes(raw)
            valid_until = as_utc(r.valid_until) if r.valid_until is not None else None
            claims.append(
                _Claim(r.id, r.attempts + 1, as_utc(r.give_up_at), message, r.kind, valid_until)
            )
        return claims

    async def _send_all(self, claims: list[_Claim]) -> SendReport:
        errors = [await self._send(c) for c in claims]
        return await self._record(claims, errors)

    async def _send(self, claim: _Claim) -> str | None:
        """Hand the mail to the mailer; the failure's class name (never its message, which
        may quote the address), or None when it left."""
        if claim.message is None:
            return "Expired"
        try:
            await self._ctx.mailer.send(claim.message)
        except Exception as exc:  # noqa: BLE001 - recorded as a class name and retried
            cause = exc.__cause__ or exc
            return type(cause).__name__[:64]
        return None

    async def _record(self, claims: list[_Claim], errors: list[str | None]) -> SendReport:
        ctx = self._ctx
        now = ctx.clock.now()
        s = ctx.settings
        sent = retried = failed = 0
        m = mail_outbox
        async with ctx.transaction() as conn:
            for claim, error in zip(claims, errors, strict=True):
                if error is None:
                    values: dict[str, object] = {
                        "status": "sent",
                        "sent_at": now,
                        "sealed": None,
                        "last_error": None,
                    }
                    sent += 1
                else:
                    due = now + backoff(
                        claim.attempts, s.mail_retry_seconds, s.mail_retry_max_seconds
                    )
                    if due >= claim.give_up_at or claim.message is None:
                        # "Expired" (not even tried) keeps the cause of the last attempt.
                        cause = (
                            func.coalesce(m.c.last_error, error) if claim.message is None else error
                        )
                        values = {"status": "failed", "last_error": cause}
                        if not retriable(claim.kind, claim.valid_until, now):
                            values["sealed"] = None
                        failed += 1
                    else:
                        values = {"next_attempt_at": due, "last_error": error}
                        retried += 1
                await conn.execute(
                    update(m)
                    .where(m.c.id == claim.id)
                    .where(m.c.status == "pending")
                    .values(values)
                )
        if failed:
            log.warning("mail_given_up", count=failed)
        return SendReport(sent, retried, failed)


async def send_after_commit(ctx: VaultContext, ids: list[str]) -> None:
    """The first attempt of the mails a transaction queued; a failure is left to the
    queue's retries (logged by class only), never raised into the committed request."""
    try:
        await MailSender(ctx).send_now(ids)
    except Exception as exc:  # noqa: BLE001 - the mail stays queued; the job retries it
        log.warning("mail_first_attempt_failed", error=type(exc).__name__)
