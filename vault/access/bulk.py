"""Bulk resolution: the lookup for whole audiences at once, as a stream of NDJSON lines.

`resolve_batch` is an async generator of NDJSON. It works through the identifiers in chunks
(`CHUNK`), each one run of the access pipeline (`vault.access.pipeline`): one read over the
chunk, the same decision as the single lookup for each identifier, and one audit event per
identifier, allowed or denied. A chunk's lines leave only after its events are committed;
when they cannot be (storage or audit trail down) nothing of that chunk or after it is
revealed and the stream ends with an error line. Without contacts the chunks are prepared
ahead and committed in input order, as many ready chunks per audit write as there are
(`_stream_group_committed`); with contacts each chunk is one transaction. Memory is bounded
by `AHEAD` chunks, however large the batch.

Lines never echo the identifier: they carry its index `i` in the request. With a `contact`,
every line that would reveal data first reserves the contact's points (`OutboundContact`) in
the chunk's transaction, or is denied like the single lookup.

Stored data is checked like the single lookup checks it, before any reservation: a row found
by e-mail, phone or customer number must hold that value, and every ciphertext must open at
the row's revision. A line that fails is `{"i", "reason": "integrity_error", "status": 500}`,
audited as a denial; the other lines are not affected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from vault.access.events import LookupEvents
from vault.access.judge import DUPLICATE_IDENTIFIER, INVALID_IDENTIFIER, Outcome
from vault.access.lookup import (
    IDENTIFIER_KINDS,
    LookupDenied,
    deny_message,
    fields_for_channel,
)
from vault.access.pipeline import Request, batch_keys, prepare, run_in_transaction
from vault.access.reveal import Opener
from vault.audit.batch import AuditBatcher
from vault.audit.events import Actor, EventRecord
from vault.clock import as_utc
from vault.errors import InvalidInput, InvariantViolation, Unavailable
from vault.subjects.decision import Deny, DenyReason, check_contact, check_request
from vault.subjects.outbound import OutboundContact

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Identifiers per read (one SELECT each); with contacts also per transaction.
CHUNK = 500
#: Chunks read, decided and decrypted ahead of the commits (without contacts); memory
#: holds at most this many chunks, however large the batch.
AHEAD = 8
#: Most identifiers one request may carry.
MAX_IDENTIFIERS = 10_000

_STATUS = {
    DenyReason.SUBJECT_NOT_FOUND: 404,
    INVALID_IDENTIFIER: 422,
    DUPLICATE_IDENTIFIER: 409,
    DenyReason.INTEGRITY_ERROR: 500,
}
_encode = msgspec.json.Encoder().encode
_encode_lines = msgspec.json.Encoder().encode_lines  # NDJSON: one line per item


def validate(kind: str, values: Sequence[str], fields: Sequence[str] | None) -> None:
    """The request's shape (also the dry run's): a known kind, 1..MAX identifiers."""
    if kind not in IDENTIFIER_KINDS:
        raise InvalidInput(
            "unknown identifier", {"identifier": "use one of " + ", ".join(IDENTIFIER_KINDS)}
        )
    if not values:
        raise InvalidInput("no identifiers", {kind + "s": "name at least one identifier"})
    if len(values) > MAX_IDENTIFIERS:
        raise InvalidInput(
            "too many identifiers", {kind + "s": f"at most {MAX_IDENTIFIERS} per request"}
        )
    if fields is not None and not fields:
        raise InvalidInput("fields must not be empty", {"fields": "name at least one field"})


def _fallback_ids(kind: str, keys: list[str | None]) -> Sequence[str | None]:
    """The subject id a denial without a resolved subject records: the key, if an id."""
    return keys if kind == "subject_id" else [None] * len(keys)


async def resolve_batch(
    ctx: VaultContext,
    actor: Actor,
    client_purposes: frozenset[str],
    *,
    purpose_id: str,
    identifier_kind: str,
    identifiers: Sequence[str],
    fields: Sequence[str] | None = None,
    contact: OutboundContact | None = None,
    chunk_size: int = CHUNK,
) -> AsyncIterator[bytes]:
    """Yield NDJSON, one or more chunks' lines per item, each only after its audit committed.

    Before the first item: raises `InvalidInput` for a bad request and `LookupDenied` (after
    auditing one denial per identifier) when the purpose check fails for the whole batch,
    and `Unavailable` when the first chunk cannot be committed. A later chunk that cannot be
    committed ends the stream with an error line.
    """
    validate(identifier_kind, identifiers, fields)
    purpose = ctx.catalogue.get(purpose_id)
    checked = check_request(purpose, purpose_id, client_purposes, fields)
    if contact is not None:
        contact = contact.resolve(ctx, purpose)  # raises InvalidInput
        checked = contact.check_grant(ctx, actor.id, client_purposes, checked)
    checked = check_contact(purpose, contact.brand if contact is not None else None, checked)
    checked = fields_for_channel(ctx, contact, checked)
    now = ctx.clock.now()
    events = LookupEvents(
        actor,
        purpose_id if purpose is not None else "<unknown>",
        identifier_kind,
        list(fields) if fields is not None else None,
        now,
        contact,
        batch=True,
    )
    if isinstance(checked, Deny):
        # A denial that needs no subject still costs one event per identifier (events
        # equal accesses); written in one statement before the 403 leaves.
        denied = Outcome(checked.reason)
        records: list[EventRecord] = []
        for start in range(0, len(identifiers), CHUNK):
            chunk = identifiers[start : start + CHUNK]
            ids = (
                batch_keys(ctx, "subject_id", chunk)
                if identifier_kind == "subject_id"
                else [None] * len(chunk)
            )
            records += events.records([denied] * len(chunk), start, ids)
        await ctx.audit_batcher.append_many(records)
        raise LookupDenied(checked.reason, deny_message(checked.reason))
    if purpose is None:
        raise InvariantViolation("purpose is unset")
    req = Request(
        ctx, actor, purpose, checked, identifier_kind, now, events,
        Opener(ctx, identifier_kind, remember=False),
        contact.brand if contact is not None else None,
    )  # fmt: skip
    if contact is None:
        stream = _stream_group_committed(req, ctx.audit_batcher, identifiers, chunk_size)
    else:
        stream = _stream_in_transactions(req, identifiers, chunk_size, contact)
    async for item in stream:
        yield item


def _unavailable_line(from_i: int) -> bytes:
    return (
        _encode(
            {
                "error": "unavailable",
                "status": 503,
                "detail": (
                    "storage or audit trail unavailable; nothing from this line on was revealed"
                ),
                "from_i": from_i,
            }
        )
        + b"\n"
    )


async def _stream_group_committed(
    req: Request, batcher: AuditBatcher, identifiers: Sequence[str], chunk_size: int
) -> AsyncIterator[bytes]:
    """Without contacts: chunks are read, decided and decrypted ahead (`AHEAD` at a time,
    each one autocommit read), and committed by this generator in input order, every
    chunk that is ready by then in the same audit write.

    Why: the commits are the serial part of a batch (a chunk's lines may leave only after
    its events are durable, and a chunk must not commit after an earlier one failed, or
    the trail would record lines that never left). One write per chunk put 200 statements
    for 100,000 identifiers in a row, each waiting for the one before, and they dominated
    the run (docs/performance.md); grouping the chunks that are ready makes
    that chain as short as the preparing allows, while reads and decryption overlap it.
    A group commits whole or not at all; when it cannot, nothing of it or after it is
    revealed and the stream ends with an error line naming its first index.
    """
    pending: collections.deque[tuple[int, asyncio.Task[tuple[list[EventRecord], bytes]]]] = (
        collections.deque()
    )
    following = iter(range(0, len(identifiers), chunk_size))

    def refill() -> None:
        while len(pending) < AHEAD:
            start = next(following, None)
            if start is None:
                return
            chunk = identifiers[start : start + chunk_size]
            pending.append((start, asyncio.ensure_future(_prepare_chunk(req, chunk, start))))

    refill()
    try:
        while pending:
            first = pending[0][0]
            try:
                await asyncio.wait([pending[0][1]])
                group: list[tuple[list[EventRecord], bytes]] = []
                while pending and pending[0][1].done():
                    group.append(pending.popleft()[1].result())  # raises what it raised
                refill()  # the next chunks are prepared while this group commits
                await batcher.append_many([event for events, _ in group for event in events])
            except Unavailable:
                if first == 0:
                    raise
                yield _unavailable_line(first)
                return
            # Committed: only now may the group's lines (data and denials) leave.
            yield b"".join(lines for _, lines in group)
    finally:
        for _, task in pending:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _prepare_chunk(
    req: Request, chunk: Sequence[str], start: int
) -> tuple[list[EventRecord], bytes]:
    """Read (one autocommit statement), decide and decrypt one chunk: its audit events and
    its encoded lines, which may leave only once the events are committed."""
    keys = batch_keys(req.ctx, req.kind, chunk)
    outcomes, events = await prepare(req, req.ctx.reads, keys, start, _fallback_ids(req.kind, keys))
    return events, _encode_lines(_lines(outcomes, start))


async def _stream_in_transactions(
    req: Request,
    identifiers: Sequence[str],
    chunk_size: int,
    contact: OutboundContact,
) -> AsyncIterator[bytes]:
    """With contacts: one transaction per chunk, one chunk at a time. Read, reservations
    and events commit together, reservations follow the input order ("a subject's first
    line counts") and one reserving transaction is open per batch."""
    reserved_subjects: set[str] = set()  # one contact per subject and batch
    for start in range(0, len(identifiers), chunk_size):
        chunk = identifiers[start : start + chunk_size]
        keys = batch_keys(req.ctx, req.kind, chunk)
        try:
            async with req.ctx.transaction() as conn:
                outcomes = await run_in_transaction(
                    req, conn, keys, start, _fallback_ids(req.kind, keys), contact,
                    reserved_subjects, with_followup=False,
                )  # fmt: skip
        except Unavailable:
            if start == 0:
                raise
            yield _unavailable_line(start)
            return
        # Committed: only now may this chunk's lines (data and denials) leave.
        yield _encode_lines(_lines(outcomes, start))


def _lines(outcomes: list[Outcome], start: int) -> list[dict[str, Any]]:
    """One NDJSON line per identifier, from its decided (and revealed) outcome."""
    lines: list[dict[str, Any]] = []
    for j, o in enumerate(outcomes):
        i = start + j
        allow = o.allow
        if allow is None:
            reason = str(o.reason)
            lines.append({"i": i, "reason": reason, "status": _STATUS.get(reason, 403)})
            continue
        basis = allow.basis
        expires = as_utc(basis.expires_at)
        line: dict[str, Any] = {
            "i": i,
            "subject_id": o.row["id"],
            "fields": o.data,
            "basis": {
                "id": basis.id,
                "type": basis.basis,
                "expires_at": expires.isoformat() if expires else None,
            },
        }
        r = o.reservation
        if r is not None:
            line["contact"] = {
                "id": r.contact_id,
                "month": r.month,
                "points": r.points,
                "used": r.used,
                "basket": r.basket,
            }
            if r.channel is not None:  # the channel charged, as in the single lookup's
                line["contact"]["channel"] = r.channel
            if r.preferred_channel is not None:  # as in the single lookup's answer
                line["preferred_channel"] = r.preferred_channel
        lines.append(line)
    return lines


__all__ = [
    "CHUNK",
    "MAX_IDENTIFIERS",
    "resolve_batch",
]
