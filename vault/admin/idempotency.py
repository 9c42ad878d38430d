"""Idempotency keys: a retried POST answers with the first answer instead of acting twice.

draft-ietf-httpapi-idempotency-key-header: a client sends `Idempotency-Key` with a POST that
creates or changes something; when it times out it retries with the same key. The records
are rows of `idempotency_records` (in the database, so a retry reaching another node finds
them), one per (API client, key), kept 24 hours:

- the first request with a key `claim`s it (an insert that only one of concurrent requests
  wins, `ON CONFLICT DO NOTHING`) and does the work; `complete` stores its answer, `release`
  forgets the key when the work failed (nothing was done, so a retry may do it);
- a retry with the same method, path and body (`fingerprint`) while the first still runs
  is `Busy` (the caller waits and asks again, then answers 409); afterwards it is a `Replay`
  of the stored answer;
- the same key with another request is a `Mismatch` (422).

Why admin: a key belongs to an API client, the area that owns them.

Two kinds of operation use keys:

- **stored answers** (creating a subject, a consent, a request step, a recorded contact):
  `complete` stores the 2xx answer and a retry gets it back (`Replay`) without acting again.
  These answers hold ids, statuses and times, never contact data;
- **repeatable reads** (a lookup, a batch lookup): nothing of the answer is kept
  (`complete(..., None)`), and a retry is told to run again (`Repeat`). A stored lookup
  answer was a copy of contact data that a replay handed out past a withdrawal, an
  objection, a restriction or an erasure made in between, and that an erasure could not
  shred. Running again decides anew; what the key still protects is the contact's basket
  points, reserved once per key and subject (`vault.outreach.basket.contact_id_for`, the
  contact's id derived from the key's `retry_token`: the second reservation finds the first).

The stored answer is sealed with a key of its own all the same, wrapped by the KEK under the
identity `idempotency:<record id>` (never a subject id), and handing it out again is audited
(fail closed: no event, no answer). The key is stored as a digest: a client may pick any
string, and it is nobody's business in the database.

A record whose KEK version is retired before it expires no longer opens: its replay fails
as an integrity error (500), nothing is done twice. Retire versions at least 24 hours after
a rotation. Expired records are deleted by the retention run (`purge_expired`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import Actor, AuditAction, Decision, record
from vault.crypto import open_field, seal_field
from vault.storage.dialect import insert_ignoring_conflict
from vault.storage.tables import idempotency_records

if TYPE_CHECKING:
    from vault.context import VaultContext

#: How long a key is remembered after its first use.
KEEP = timedelta(hours=24)
#: How long a running request holds its key; a worker that died is taken over after this.
LEASE = timedelta(seconds=60)
IN_PROGRESS = "in_progress"
DONE = "done"
_FIELD = "response"
_SEAL_VERSION = 1


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    media_type: str
    body: bytes
    #: The answer's `ETag` header, if it had one.
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request holds the key: do the work, then `complete` or `release`."""

    record_id: str


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class Repeat:
    """The same request was answered before and keeps no answer (a repeatable read): run
    it again."""


@dataclass(frozen=True, slots=True)
class Busy:
    """The first request with this key is still running."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The key was first used for another request (method, path or body)."""


Outcome = Claimed | Replay | Repeat | Busy | Mismatch


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request: method, path (with its query) and body."""
    h = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8"), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def retry_token(client_id: str, key: str) -> str:
    """What a client's key stands for outside this table: a digest bound to the client, so
    two clients choosing the same key never share anything."""
    return hashlib.sha256(f"{client_id}\x00{key}".encode()).hexdigest()


def _wrap_id(record_id: str) -> str:
    return f"idempotency:{record_id}"


async def _audit(
    conn: AsyncConnection, at: datetime, actor: Actor, decision: Decision, reason: str | None
) -> None:
    await record(
        conn,
        at=at,
        actor=actor,
        action=AuditAction.IDEMPOTENT_REPLAY,
        decision=decision,
        reason=reason,
    )


async def claim(
    ctx: VaultContext,
    actor: Actor,
    client_id: str,
    key: str,
    request_fingerprint: str,
    *,
    keeps_answer: bool = True,
) -> Outcome:
    """Take the key for this request, or say why not (see the module docstring). For an
    operation that does not keep its answer (`keeps_answer=False`) a finished request is
    `Repeat`, whatever the record holds: an answer stored before lookups stopped keeping
    theirs is never handed out."""
    now = ctx.clock.now()
    digest = key_digest(key)
    table = idempotency_records
    mine = (table.c.client_id == client_id) & (table.c.key_digest == digest)
    async with ctx.transaction() as conn:
        # A record past its 24 hours, or a running one whose worker stopped holding it, is
        # no longer in the way.
        await conn.execute(
            delete(table)
            .where(mine)
            .where(
                (table.c.expires_at <= now)
                | ((table.c.status == IN_PROGRESS) & (table.c.locked_until <= now))
            )
        )
        record_id = str(uuid.uuid4())
        inserted = await conn.execute(
            insert_ignoring_conflict(conn, idempotency_records, ["client_id", "key_digest"]).values(
                id=record_id,
                client_id=client_id,
                key_digest=digest,
                fingerprint=request_fingerprint,
                status=IN_PROGRESS,
                created_at=now,
                locked_until=now + LEASE,
                expires_at=now + KEEP,
            )
        )
        if inserted.rowcount == 1:
            return Claimed(record_id)
        row = (await conn.execute(select(table).where(mine))).one()
        if row.fingerprint != request_fingerprint:
            await _audit(conn, now, actor, Decision.DENY, "idempotency_key_reused")
            return Mismatch()
        if row.status == IN_PROGRESS:
            return Busy()
        if not keeps_answer or row.response_ct is None:
            return Repeat()
        aead = ctx.deks.dek(_wrap_id(row.id), row.kek_version, row.wrapped_key, remember=False)
        body = open_field(aead, row.id, _FIELD, _SEAL_VERSION, row.response_ct)
        await _audit(conn, now, actor, Decision.ALLOW, None)
    return Replay(
        StoredResponse(
            row.response_status, row.response_type, body.encode("utf-8"), row.response_etag
        )
    )


async def complete(ctx: VaultContext, record_id: str, response: StoredResponse | None) -> None:
    """Store the answer of the request holding `record_id`, sealed; `None` for an operation
    that keeps no answer (the key stays taken for this request, a retry runs again)."""
    if response is None:
        async with ctx.transaction() as conn:
            await conn.execute(
                update(idempotency_records)
                .where(idempotency_records.c.id == record_id)
                .values(status=DONE)
            )
        return
    aead, kek_version, wrapped = ctx.deks.new_dek(_wrap_id(record_id))
    sealed = seal_field(aead, record_id, _FIELD, _SEAL_VERSION, response.body.decode("utf-8"))
    async with ctx.transaction() as conn:
        await conn.execute(
            update(idempotency_records)
            .where(idempotency_records.c.id == record_id)
            .values(
                status=DONE,
                response_status=response.status,
                response_type=response.media_type,
                response_etag=response.etag,
                kek_version=kek_version,
                wrapped_key=wrapped,
                response_ct=sealed,
            )
        )


async def release(ctx: VaultContext, record_id: str) -> None:
    """Forget the key: the request holding it did nothing, so a retry may do the work."""
    async with ctx.transaction() as conn:
        await conn.execute(delete(idempotency_records).where(idempotency_records.c.id == record_id))


async def purge_expired(ctx: VaultContext) -> int:
    """Delete the records past their 24 hours; returns how many."""
    async with ctx.transaction() as conn:
        result = await conn.execute(
            delete(idempotency_records).where(idempotency_records.c.expires_at <= ctx.clock.now())
        )
    return int(result.rowcount)
