"""Bulk resolution and the audience dry run: the lookup, for whole audiences at once.

`resolve_batch` is an async generator of NDJSON. It works through the identifiers in chunks
(`CHUNK`): one SELECT over the chunk (`= ANY(...)` / `IN (...)`, joined with the subjects'
records for the purpose), the same decision as the single lookup for each identifier, and
one audit event per identifier, allowed or denied. A chunk's lines leave only after its
events are committed; when they cannot be (storage or audit trail down) nothing of that
chunk or after it is revealed and the stream ends with an error line. Without contacts the
chunks are prepared ahead and committed in input order, as many ready chunks per audit
write as there are (`_stream_group_committed`); with contacts each chunk is one
transaction. Memory is bounded by `AHEAD` chunks, however large the batch.

Lines never echo the identifier: they carry its index `i` in the request. With a `contact`,
every line that would reveal data first reserves the contact's points (`OutboundContact`) in
the chunk's transaction, or is denied like the single lookup.

Stored data is checked like the single lookup checks it, before any reservation: a row found
by e-mail, phone or customer number must hold that value, and every ciphertext must open at
the row's revision. A line that fails is `{"i", "reason": "integrity_error", "status": 500}`,
audited as a denial; the other lines are not affected.

`dry_run` answers "how many of these subjects could be reached now for this purpose, and why
not the others", from the same decision, without selecting or decrypting any ciphertext,
for groups only (a minimum audience, small buckets suppressed); it is audited as one event
with the counts and one event per subject concerned.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
from sqlalchemy import Select, String, and_, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.batch import AuditBatcher
from vault.audit.events import Actor, AuditAction, Decision, EventRecord
from vault.catalogue.purposes import Purpose
from vault.clock import as_utc
from vault.crypto import IntegrityCheckFailed, KeyringError
from vault.errors import InvalidInput, InvariantViolation, Unavailable
from vault.storage.rows import canonical_id
from vault.storage.tables import consents, subjects
from vault.subjects.decision import Allow, BasisFacts, Deny, DenyReason, check_request, decide
from vault.subjects.lookup import IDENTIFIER_KINDS, LookupDenied, deny_message
from vault.subjects.outbound import OutboundContact, Reservation
from vault.subjects.store import INDEXED, decrypt_fields, identifier_digest

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Identifiers per read (one SELECT each); with contacts also per transaction.
CHUNK = 500
#: Chunks read, decided and decrypted ahead of the commits (without contacts); memory
#: holds at most this many chunks, however large the batch.
AHEAD = 8
#: Most identifiers one request may carry.
MAX_IDENTIFIERS = 10_000
INVALID_IDENTIFIER = "invalid_identifier"
NO_CONTACT_DATA = "no_contact_data"
#: A subject named twice in one batch that reserves contacts: only its first line counts.
DUPLICATE_IDENTIFIER = "duplicate_identifier"
#: Which stored field an outbound contact over a channel needs.
CHANNEL_FIELD = {"email": "email", "sms": "phone", "phone": "phone", "letter": "postal_address"}

_STATUS = {
    DenyReason.SUBJECT_NOT_FOUND: 404,
    INVALID_IDENTIFIER: 422,
    DUPLICATE_IDENTIFIER: 409,
    DenyReason.INTEGRITY_ERROR: 500,
}
_encode = msgspec.json.Encoder().encode
_encode_lines = msgspec.json.Encoder().encode_lines  # NDJSON: one line per item
_AUDIT_INSERT = audit._INSERT  # prebuilt once; executemany with one parameter set per line


class _Outcome(NamedTuple):
    """The decision for one identifier: allow (row + Allow) or a deny reason. A named tuple:
    one is built per identifier, and a tuple is cheaper to make than a frozen dataclass."""

    reason: str | None
    #: The subject's row as read (an asyncpg record or a row mapping: indexes by column name).
    row: Any = None
    allow: Allow | None = None
    reservation: Reservation | None = None
    #: The allowed fields, decrypted (and the row checked) before any reservation.
    data: dict[str, Any] | None = None


async def _reserve_chunk(
    conn: AsyncConnection,
    ctx: VaultContext,
    actor: Actor,
    purpose: Purpose,
    contact: OutboundContact,
    outcomes: list[_Outcome],
    now: datetime,
    reserved_before: set[str] | None = None,
) -> list[_Outcome]:
    """Reserve the contact's points for every allowed line, in the chunk's transaction; a
    full basket or a calamity cool-down turns the line into a denial. Reservations are made
    in subject-id order, so concurrent batches lock budget rows in the same order.

    One contact per subject and batch: a subject named again (the same identifier twice)
    is denied `duplicate_identifier` instead of paying twice; `reserved_before` carries
    the subjects already handled by earlier chunks of the batch."""
    out = list(outcomes)
    seen = reserved_before if reserved_before is not None else set()
    allowed = sorted((o.row["id"], j) for j, o in enumerate(outcomes) if o.allow is not None)
    for subject_id, j in allowed:
        if subject_id in seen:
            out[j] = _Outcome(DUPLICATE_IDENTIFIER, outcomes[j].row)
            continue
        seen.add(subject_id)
        got = await contact.reserve(
            conn,
            ctx,
            subject_id=subject_id,
            purpose_id=purpose.id,
            actor=actor,
            now=now,
            with_followup=False,
        )
        if isinstance(got, Deny):
            out[j] = _Outcome(got.reason, outcomes[j].row)
        else:
            out[j] = outcomes[j]._replace(reservation=got)
    return out


def _contact_detail(contact: OutboundContact, reserved: Reservation | None) -> dict[str, object]:
    """The same shape as the single lookup's audit detail for a contact."""
    out: dict[str, object] = {
        "brand": contact.brand,
        "channel": contact.channel,
        "type": contact.type,
        "priority": contact.priority,
    }
    if reserved is not None:
        out["id"] = reserved.contact_id
        out["points"] = reserved.points
    return out


def _key_column(kind: str) -> Any:
    return subjects.c.id if kind == "subject_id" else getattr(subjects.c, INDEXED[kind])


def _build(kind: str, data: tuple[str, ...] | None, *, array: bool) -> Select[Any]:
    on = and_(consents.c.subject_id == subjects.c.id, consents.c.purpose == bindparam("purpose"))
    key = _key_column(kind)
    head: list[Any] = (
        # What deciding and decrypting need, and only the sealed fields the request may
        # reveal: ciphertexts of other fields never leave the database (and are not read,
        # sent or decoded for nothing).
        [
            subjects.c.id,
            subjects.c.status,
            subjects.c.kek_version,
            subjects.c.wrapped_dek,
            subjects.c.dek_version,
            subjects.c.contact_revision,
            # The identifier's own ciphertext too (by e-mail, phone, customer number), to
            # check each row against the index it was found by (`_Opener`).
            *(
                getattr(subjects.c, f"{f}_ct")
                for f in sorted({*data, kind} if kind in INDEXED else data)
            ),
        ]
        if data is not None
        else [
            subjects.c.id,
            subjects.c.status,
            *(
                getattr(subjects.c, f"{f}_ct").is_not(None).label(f"has_{f}")
                for f in sorted(set(CHANNEL_FIELD.values()))
            ),
        ]
    )
    return (
        select(
            *head,
            key.label("k"),
            consents.c.id.label("b_id"),
            consents.c.basis.label("b_basis"),
            consents.c.status.label("b_status"),
            consents.c.expires_at.label("b_expires_at"),
            consents.c.confirm_deadline.label("b_deadline"),
        )
        .select_from(subjects.outerjoin(consents, on))
        .where(
            # PostgreSQL: one array parameter, so the prepared statement is the same for
            # every chunk; elsewhere an expanding IN (...).
            key == any_(bindparam("keys", type_=ARRAY(String)))
            if array
            else key.in_(bindparam("keys", expanding=True))
        )
        .order_by(subjects.c.id, consents.c.created_at.desc())
    )


#: Built once per identifier kind and set of fields (at most 2^5 sets: the key is sorted);
#: only parameters change per chunk.
_STATEMENTS: dict[tuple[str, tuple[str, ...] | None, bool], Select[Any]] = {}


def _statement(ctx: VaultContext, kind: str, data: tuple[str, ...] | None) -> Select[Any]:
    """The chunk read: with `data`, the sealed columns of those fields; None: only whether
    the subject has each channel's field (dry run)."""
    key = (
        kind,
        tuple(sorted(data)) if data is not None else None,
        ctx.engine.dialect.name == "postgresql",
    )
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = _build(key[0], key[1], array=key[2])
    return statement


def _safe_id(value: str) -> str | None:
    """A well-formed subject id in canonical form, else None (never arbitrary input)."""
    return canonical_id(value)


def _keys(ctx: VaultContext, kind: str, values: Sequence[str]) -> list[str | None]:
    """The database key per identifier (subject id or blind-index digest); None = invalid."""
    if kind == "subject_id":
        return [_safe_id(v) if isinstance(v, str) else None for v in values]
    out: list[str | None] = []
    for v in values:
        try:
            out.append(identifier_digest(ctx, kind, v) if isinstance(v, str) else None)
        except InvalidInput:
            out.append(None)
    return out


async def _fetch(
    ctx: VaultContext,
    conn: AsyncConnection | None,
    kind: str,
    purpose: Purpose,
    keys: list[str | None],
    *,
    data: tuple[str, ...] | None,
) -> list[Any]:
    """The chunk's subjects joined with their records for the purpose (rows index by column
    name). Without `conn`: one autocommit read on the raw PostgreSQL pool."""
    wanted = list({k for k in keys if k is not None})
    if not wanted:
        return []
    params = {"purpose": purpose.id, "keys": wanted}
    if conn is None:
        return await ctx.read_rows(_statement(ctx, kind, data), params)
    return list((await conn.execute(_statement(ctx, kind, data), params)).mappings())


class _Opener:
    """Opens what a chunk's decisions need from one subject row, as the single lookup
    does (`vault.subjects.lookup._open`): the fields an allowed line reveals, and for a row found by
    a blind index that identifier, to re-derive its index (denied lines too). Keys are left
    out of the DEK cache."""

    __slots__ = ("ctx", "kind")

    def __init__(self, ctx: VaultContext, kind: str) -> None:
        self.ctx, self.kind = ctx, kind

    def __call__(self, row: Any, key: str, allow: Allow | None) -> _Outcome:
        if allow is None and self.kind == "subject_id":
            return _Outcome(None, row)
        try:
            data = decrypt_fields(
                self.ctx,
                row,
                allow.fields if allow is not None else (),
                cache_key=False,
                found_by=None if self.kind == "subject_id" else (self.kind, key),
            )
        except IntegrityCheckFailed:
            return _Outcome(DenyReason.INTEGRITY_ERROR, row)
        except KeyringError as exc:
            raise Unavailable("keyring is unavailable; nothing was revealed") from exc
        return _Outcome(None, row, allow, None, data if allow is not None else None)


def _decide_chunk(
    rows: list[Any],
    purpose: Purpose,
    fields: tuple[str, ...],
    keys: list[str | None],
    now: datetime,
    opener: _Opener | None = None,
) -> list[_Outcome]:
    """The single lookup's decision for every identifier of the chunk (pure without an
    `opener`: the dry run decides without decrypting anything)."""
    by_key: dict[str, list[Any]] = {}
    for r in rows:
        k = r["k"]
        hits = by_key.get(k)
        if hits is None:
            by_key[k] = [r]
        else:
            hits.append(r)
    decided: dict[str, _Outcome] = {}
    out: list[_Outcome] = []
    for key in keys:
        if key is None:
            out.append(_INVALID)
            continue
        hit = decided.get(key)
        if hit is None:
            hits = by_key.get(key)
            if not hits:
                hit = _NOT_FOUND
            elif len(hits) > 1 and any(r["id"] != hits[0]["id"] for r in hits):
                hit = _AMBIGUOUS
            else:
                first = hits[0]
                facts = [
                    BasisFacts(
                        r["b_id"], r["b_basis"], r["b_status"], r["b_expires_at"], r["b_deadline"]
                    )
                    for r in hits
                    if r["b_id"] is not None
                ]
                verdict = decide(purpose, fields, first["status"], facts, now)
                allow = verdict if isinstance(verdict, Allow) else None
                opened = opener(first, key, allow) if opener is not None else None
                if opened is not None and opened.reason is not None:
                    hit = opened  # the stored data failed its check: no decision about it
                elif isinstance(verdict, Allow):
                    hit = opened or _Outcome(None, first, verdict)
                else:
                    hit = _Outcome(verdict.reason, first)
            decided[key] = hit
        out.append(hit)
    return out


#: Outcomes without a subject are the same every time (immutable): built once.
_INVALID = _Outcome(INVALID_IDENTIFIER)
_NOT_FOUND = _Outcome(DenyReason.SUBJECT_NOT_FOUND)
_AMBIGUOUS = _Outcome(DenyReason.AMBIGUOUS_IDENTIFIER)


def _batch_detail(actor: Actor, kind: str, i: int) -> dict[str, object]:
    return {"batch": actor.request_id, "by": kind, "i": i}


async def _deny_whole_batch(
    ctx: VaultContext,
    actor: Actor,
    purpose_label: str,
    kind: str,
    values: Sequence[str],
    requested: list[str] | None,
    reason: DenyReason,
    now: datetime,
) -> None:
    """A denial that needs no subject still costs one event per identifier (events equal
    accesses); written in one transaction before the 403 leaves."""
    async with ctx.transaction() as conn:
        for start in range(0, len(values), CHUNK):
            chunk = values[start : start + CHUNK]
            ids = _keys(ctx, "subject_id", chunk) if kind == "subject_id" else [None] * len(chunk)
            await conn.execute(
                _AUDIT_INSERT,
                [
                    audit.event_row(
                        at=now,
                        actor=actor,
                        action=AuditAction.LOOKUP,
                        decision=Decision.DENY,
                        subject_id=sid,
                        purpose=purpose_label,
                        fields=requested,
                        reason=reason,
                        detail=_batch_detail(actor, kind, start + j),
                    )
                    for j, sid in enumerate(ids)
                ],
            )


def _validate(kind: str, values: Sequence[str], fields: Sequence[str] | None) -> None:
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


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every chunk of one bulk request shares."""

    ctx: VaultContext
    actor: Actor
    purpose: Purpose
    #: The fields lines may reveal (checked against the purpose).
    fields: tuple[str, ...]
    #: The fields as asked for (None: the purpose's); denied events list them.
    requested: list[str] | None
    kind: str
    now: datetime
    #: Every line's audit detail up to its index: `{"batch": ..., "by": ..., "i": `.
    detail_prefix: str


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
    _validate(identifier_kind, identifiers, fields)
    purpose = ctx.catalogue.get(purpose_id)
    checked = check_request(purpose, purpose_id, client_purposes, fields)
    if contact is not None:
        contact = contact.resolve(ctx, purpose)  # raises InvalidInput
        checked = contact.check_grant(ctx, actor.id, client_purposes, checked)
    now = ctx.clock.now()
    requested = list(fields) if fields is not None else None
    if isinstance(checked, Deny):
        label = purpose_id if purpose is not None else "<unknown>"
        await _deny_whole_batch(
            ctx, actor, label, identifier_kind, identifiers, requested, checked.reason, now
        )
        raise LookupDenied(checked.reason, deny_message(checked.reason))
    if purpose is None:
        raise InvariantViolation("purpose is unset")
    batch = _Batch(
        ctx,
        actor,
        purpose,
        checked,
        requested,
        identifier_kind,
        now,
        '{"batch": '
        + json.dumps(actor.request_id)
        + ', "by": '
        + json.dumps(identifier_kind)
        + ', "i": ',
    )
    if contact is None and ctx.audit_batcher is not None:
        stream = _stream_group_committed(batch, ctx.audit_batcher, identifiers, chunk_size)
    else:
        stream = _stream_in_transactions(batch, identifiers, chunk_size, contact)
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
    batch: _Batch, batcher: AuditBatcher, identifiers: Sequence[str], chunk_size: int
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
    pending: collections.deque[tuple[int, asyncio.Task[tuple[list[Any], bytes]]]] = (
        collections.deque()
    )
    following = iter(range(0, len(identifiers), chunk_size))

    def refill() -> None:
        while len(pending) < AHEAD:
            start = next(following, None)
            if start is None:
                return
            chunk = identifiers[start : start + chunk_size]
            pending.append((start, asyncio.ensure_future(_prepare_chunk(batch, chunk, start))))

    refill()
    try:
        while pending:
            first = pending[0][0]
            try:
                await asyncio.wait([pending[0][1]])
                group: list[tuple[list[Any], bytes]] = []
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
    batch: _Batch, chunk: Sequence[str], start: int
) -> tuple[list[Any], bytes]:
    """Read (one autocommit statement), decide and decrypt one chunk: its audit events and
    its encoded lines, which may leave only once the events are committed."""
    b = batch
    keys = _keys(b.ctx, b.kind, chunk)
    rows = await _fetch(b.ctx, None, b.kind, b.purpose, keys, data=b.fields)
    outcomes = _decide_chunk(rows, b.purpose, b.fields, keys, b.now, _Opener(b.ctx, b.kind))
    events, lines = _chunk_lines(b, keys, start, outcomes, {}, None)
    return events, _encode_lines(lines)


async def _stream_in_transactions(
    batch: _Batch,
    identifiers: Sequence[str],
    chunk_size: int,
    contact: OutboundContact | None,
) -> AsyncIterator[bytes]:
    """With contacts (or without a group commit): one transaction per chunk, one chunk at
    a time. Read, reservations and events commit together, reservations follow the input
    order ("a subject's first line counts") and one reserving transaction is open per
    batch."""
    reserved_subjects: set[str] = set()  # one contact per subject and batch
    for start in range(0, len(identifiers), chunk_size):
        chunk = identifiers[start : start + chunk_size]
        try:
            lines = await _resolve_chunk(batch, chunk, start, contact, reserved_subjects)
        except Unavailable:
            if start == 0:
                raise
            yield _unavailable_line(start)
            return
        yield lines


async def _resolve_chunk(
    batch: _Batch,
    chunk: Sequence[str],
    start: int,
    contact: OutboundContact | None,
    reserved_subjects: set[str],
) -> bytes:
    b = batch
    keys = _keys(b.ctx, b.kind, chunk)
    async with b.ctx.transaction() as conn:
        rows = await _fetch(b.ctx, conn, b.kind, b.purpose, keys, data=b.fields)
        outcomes = _decide_chunk(rows, b.purpose, b.fields, keys, b.now, _Opener(b.ctx, b.kind))
        reserved: dict[int, Reservation] = {}
        if contact is not None:
            outcomes = await _reserve_chunk(
                conn, b.ctx, b.actor, b.purpose, contact, outcomes, b.now, reserved_subjects
            )
            reserved = {j: o.reservation for j, o in enumerate(outcomes) if o.reservation}
        events, lines = _chunk_lines(b, keys, start, outcomes, reserved, contact)
        await audit.record_records(conn, events)
    # Committed: only now may this chunk's lines (data and denials) leave.
    return _encode_lines(lines)


#: `_chunk_lines` builds event records positionally, in `audit.EVENT_COLUMNS` order
#: (tests/vault/subjects/test_bulk.py compares every one with what `audit.event_row` makes).
_LOOKUP, _ALLOW, _DENY = str(AuditAction.LOOKUP), str(Decision.ALLOW), str(Decision.DENY)


def _chunk_lines(
    batch: _Batch,
    keys: list[str | None],
    start: int,
    outcomes: list[_Outcome],
    reserved: dict[int, Reservation],
    contact: OutboundContact | None,
) -> tuple[list[EventRecord], list[dict[str, Any]]]:
    """One audit event (a record, as `audit.event_row` would make it) and one NDJSON line
    per identifier, from the decided (and, where allowed, decrypted) outcomes."""
    actor, purpose, kind, now = batch.actor, batch.purpose, batch.kind, batch.now
    requested, detail_prefix = batch.requested, batch.detail_prefix
    events: list[EventRecord] = []
    lines: list[dict[str, Any]] = []
    rid, atype, aid, pid = actor.request_id, actor.type, actor.id, purpose.id
    denied_fields = ",".join(requested) if requested else None
    every_field: tuple[tuple[str, ...], str] | None = None  # (fields, as the event lists them)
    for j, o in enumerate(outcomes):
        i = start + j
        if contact is None:
            detail = detail_prefix + str(i) + "}"  # == json.dumps(..., sort_keys=True)
        else:
            full = _batch_detail(actor, kind, i)
            full["contact"] = _contact_detail(contact, reserved.get(j))
            detail = json.dumps(full, sort_keys=True)
        if o.allow is not None:
            row, basis, allowed, data = o.row, o.allow.basis, o.allow.fields, o.data
            if data is None:
                raise InvariantViolation("data is unset: decrypted by `_decide_chunk`'s opener")
            if len(data) == len(allowed):  # the usual case: the subject has every field
                if every_field is None or every_field[0] is not allowed:
                    every_field = (allowed, ",".join(sorted(allowed)))
                listed: str | None = every_field[1]
            else:
                listed = ",".join(sorted(data)) or None
            subject_id = row["id"]
            events.append(
                (
                    now,
                    rid,
                    atype,
                    aid,
                    _LOOKUP,
                    subject_id,
                    pid,
                    listed,
                    _ALLOW,
                    None,
                    basis.id,
                    detail,
                )
            )
            expires = as_utc(basis.expires_at)
            line: dict[str, Any] = {
                "i": i,
                "subject_id": subject_id,
                "fields": data,
                "basis": {
                    "id": basis.id,
                    "type": basis.basis,
                    "expires_at": expires.isoformat() if expires else None,
                },
            }
            r = reserved.get(j)
            if r is not None:
                line["contact"] = {
                    "id": r.contact_id,
                    "month": r.month,
                    "points": r.points,
                    "used": r.used,
                    "basket": r.basket,
                }
                if r.preferred_channel is not None:  # as in the single lookup's answer
                    line["preferred_channel"] = r.preferred_channel
            lines.append(line)
        else:
            reason = str(o.reason)
            sid = o.row["id"] if o.row is not None else (keys[j] if kind == "subject_id" else None)
            events.append(
                (
                    now,
                    rid,
                    atype,
                    aid,
                    _LOOKUP,
                    sid,
                    pid,
                    denied_fields,
                    _DENY,
                    reason,
                    None,
                    detail,
                )
            )
            lines.append({"i": i, "reason": reason, "status": _STATUS.get(reason, 403)})
    return events, lines


@dataclass(frozen=True, slots=True)
class DryRunResult:
    """A dry run's answer, for groups only: a bucket (the reachable ones, or one reason)
    with fewer members than `min_audience` is left out and its members are counted in
    `suppressed` (`reachable` is None then)."""

    total: int
    reachable: int | None
    unreachable: dict[str, int]
    suppressed: int
    min_audience: int


@dataclass(slots=True)
class _Tally:
    """A dry run's raw outcome: per identifier (`counts` by reason, `reachable`) and per
    subject an identifier matched (its outcome, None = reachable; the first one counts)."""

    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    reachable: int = 0
    subjects: dict[str, str | None] = dataclasses.field(default_factory=dict)


async def dry_run(
    ctx: VaultContext,
    actor: Actor,
    client_purposes: frozenset[str],
    *,
    purpose_id: str,
    identifier_kind: str,
    identifiers: Sequence[str],
    channel: str | None = None,
    contact: OutboundContact | None = None,
) -> DryRunResult:
    """Count who could be reached now for the purpose (and over `channel`), by reason, for
    an audience, never for one person.

    Same decision as the batch; a subject allowed but without the contact field the channel
    needs counts as `no_contact_data`. With `contact`, the reachable ones are also put
    through the contact's reservation (basket, calamity cool-down, the customer's own rules)
    in a savepoint that is always rolled back, so the counts include those denials and
    nothing is reserved. No ciphertext is selected, nothing is decrypted.

    Why group answers only (security finding 3): the counts of a one-person audience are
    that person's status. So the audience must hold `dry_run_min_audience`
    (policies/contact-pressure.toml) distinct known subjects, else `LookupDenied`
    `audience_too_small`; counted by subject, so padding with unknown, malformed or repeated
    identifiers does not help. A bucket smaller than that is not shown (`DryRunResult`), so
    a real audience plus one address of interest does not name that person's reason. What
    suppression cannot stop (a caller who knows every other member's status learns by
    difference whether one more is reachable) is why every subject concerned gets an audit
    event of its own: its id, the purpose and its outcome, never the identifier. The
    reads, the rehearsal and all events are one transaction: the answer leaves only once
    the events committed.
    """
    _validate(identifier_kind, identifiers, None)
    purpose = ctx.catalogue.get(purpose_id)
    if contact is not None:
        if channel is not None and contact.channel is None:
            contact = dataclasses.replace(contact, channel=channel)
        contact = contact.resolve(ctx, purpose)  # raises InvalidInput
        if channel is not None and contact.channel != channel:
            raise InvalidInput(
                "channel and contact disagree", {"contact.channel": f"must be {channel}"}
            )
        channel = contact.channel
    if channel is not None and purpose is not None and channel not in _channels(purpose):
        raise InvalidInput(
            "channel does not match the purpose",
            {
                "channel": f"the purpose {purpose_id} contacts over "
                + " or ".join(sorted(_channels(purpose)))
            },
        )
    checked = check_request(purpose, purpose_id, client_purposes, None)
    if contact is not None:
        checked = contact.check_grant(ctx, actor.id, client_purposes, checked)
    now = ctx.clock.now()
    label = purpose_id if purpose is not None else "<unknown>"
    if isinstance(checked, Deny):
        async with ctx.transaction() as conn:
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.AUDIENCE_DRY_RUN,
                decision=Decision.DENY,
                purpose=label,
                reason=checked.reason,
                detail={"by": identifier_kind, "total": len(identifiers)},
            )
        raise LookupDenied(checked.reason, deny_message(checked.reason))
    if purpose is None:
        raise InvariantViolation("purpose is unset")
    channel = channel or _channels(purpose)[0]
    k = ctx.pressure_rules.dry_run_min_audience
    detail: dict[str, object] = {"by": identifier_kind, "channel": channel}
    if contact is not None:
        detail["contact"] = _contact_detail(contact, None)
    async with ctx.transaction() as conn:
        tally = await _tally(
            conn, ctx, actor, purpose, checked, identifier_kind, identifiers, channel, contact,
            now,
        )  # fmt: skip
        too_small = len(tally.subjects) < k
        await conn.execute(
            _AUDIT_INSERT,
            _dry_run_events(actor, purpose_id, detail, tally, len(identifiers), k, now),
        )
    if too_small:
        raise LookupDenied(
            DenyReason.AUDIENCE_TOO_SMALL,
            f"a dry run answers only for at least {k} distinct known subjects and this "
            "audience has fewer; nothing about its members is answered",
        )
    return _group_answer(len(identifiers), tally, k)


async def _tally(
    conn: AsyncConnection,
    ctx: VaultContext,
    actor: Actor,
    purpose: Purpose,
    fields: tuple[str, ...],
    kind: str,
    identifiers: Sequence[str],
    channel: str,
    contact: OutboundContact | None,
    now: datetime,
) -> _Tally:
    """Decide every identifier from the chunk reads (no ciphertext); with `contact`,
    rehearse each reachable subject's reservation in a savepoint that is rolled back."""
    tally = _Tally()
    reachable: list[str] = []
    matched: set[str] = set()
    need = f"has_{CHANNEL_FIELD[channel]}"
    for start in range(0, len(identifiers), CHUNK):
        keys = _keys(ctx, kind, identifiers[start : start + CHUNK])
        rows = await _fetch(ctx, conn, kind, purpose, keys, data=None)
        matched.update(r["id"] for r in rows)
        for o in _decide_chunk(rows, purpose, fields, keys, now):
            if o.allow is None:
                tally.counts[str(o.reason)] += 1
                if o.row is not None:
                    tally.subjects.setdefault(o.row["id"], str(o.reason))
            elif not o.row[need]:
                tally.counts[NO_CONTACT_DATA] += 1
                tally.subjects.setdefault(o.row["id"], NO_CONTACT_DATA)
            else:
                reachable.append(o.row["id"])
                tally.subjects.setdefault(o.row["id"], None)
    for subject_id in sorted(matched - tally.subjects.keys()):  # matched only ambiguously
        tally.subjects[subject_id] = str(DenyReason.AMBIGUOUS_IDENTIFIER)
    if contact is None:
        tally.reachable = len(reachable)
        return tally
    if contact.type is None:
        raise InvariantViolation("contact.type is unset")
    rehearsal = await conn.begin_nested()
    try:
        seen: set[str] = set()
        for subject_id in sorted(reachable):
            if subject_id in seen:
                tally.counts[DUPLICATE_IDENTIFIER] += 1
                continue
            seen.add(subject_id)
            got = await contact.reserve(  # its channel is `channel` (resolved above)
                conn,
                ctx,
                subject_id=subject_id,
                purpose_id=purpose.id,
                actor=actor,
                now=now,
                with_followup=False,
            )
            if isinstance(got, Deny):
                tally.counts[str(got.reason)] += 1
                tally.subjects[subject_id] = str(got.reason)
    finally:
        await rehearsal.rollback()  # what the batch would meet; nothing is kept
    tally.reachable = len(identifiers) - sum(tally.counts.values())
    return tally


def _dry_run_events(
    actor: Actor,
    purpose_id: str,
    detail: dict[str, object],
    tally: _Tally,
    total: int,
    k: int,
    now: datetime,
) -> list[dict[str, object]]:
    """The summary event (raw counts, for the DPO) and one event per subject concerned
    (its outcome; `audience_too_small` for all when the run is refused). Ids only."""
    too_small = len(tally.subjects) < k
    refused = str(DenyReason.AUDIENCE_TOO_SMALL) if too_small else None
    summary = {
        **detail,
        "total": total,
        "subjects": len(tally.subjects),
        "reachable": tally.reachable,
        "unreachable": dict(sorted(tally.counts.items())),
        "min_audience": k,
    }
    events = [
        audit.event_row(
            at=now,
            actor=actor,
            action=AuditAction.AUDIENCE_DRY_RUN,
            decision=Decision.DENY if too_small else Decision.ALLOW,
            purpose=purpose_id,
            reason=refused,
            detail=summary,
        )
    ]
    shared = json.dumps(detail, sort_keys=True)
    for subject_id, reason in tally.subjects.items():
        outcome = refused or reason
        events.append(
            audit.event_row(
                at=now,
                actor=actor,
                action=AuditAction.AUDIENCE_DRY_RUN,
                decision=Decision.DENY if outcome else Decision.ALLOW,
                subject_id=subject_id,
                purpose=purpose_id,
                reason=outcome,
                detail=shared,
            )
        )
    return events


def _group_answer(total: int, tally: _Tally, k: int) -> DryRunResult:
    """Only buckets of at least `k` members; the others are counted in `suppressed`."""
    shown = {reason: n for reason, n in sorted(tally.counts.items()) if n >= k}
    reachable = tally.reachable if tally.reachable >= k else None
    suppressed = total - sum(shown.values()) - (reachable or 0)
    return DryRunResult(total, reachable, shown, suppressed, k)


def _channels(purpose: Purpose) -> list[str]:
    """The channels a purpose may contact over (its first is the default)."""
    many = getattr(purpose, "channels", None)
    if many:
        return [getattr(c, "value", c) for c in many]
    return [purpose.channel.value]


__all__ = [
    "CHUNK",
    "MAX_IDENTIFIERS",
    "DryRunResult",
    "dry_run",
    "resolve_batch",
]
