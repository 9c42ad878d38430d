"""The access pipeline: read → decide → reveal → (reserve) → audit, for a chunk of keys.

A single lookup is a chunk of one key; bulk resolution runs it per chunk. Two ways through
it, by where the events go:

- `prepare` reads through a `ReadPort` outside any write transaction (the hot path),
  decides and reveals, and returns the outcomes with their events; the caller hands the
  events to the audit group commit and lets data leave only after it returned;
- `run_in_transaction` does all of it, and the contact's reservation, in the caller's open
  transaction (`TransactionReads`, `TransactionAudit`): data leave after it commits.

Nothing here asks which database it runs on: the read adapter says how a list binds
(`ReadPort.arrays`) and the statement is built for that (`statements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from vault.access.events import LookupEvents
from vault.access.judge import DUPLICATE_IDENTIFIER, Outcome, decide_keys
from vault.access.ports import TransactionAudit
from vault.access.reveal import Opener
from vault.access.statements import subject_read
from vault.audit.events import Actor, EventRecord
from vault.catalogue.purposes import Purpose
from vault.errors import InvalidInput
from vault.storage.ports import ReadPort, Row, TransactionReads
from vault.storage.rows import canonical_id
from vault.subjects.decision import Deny
from vault.subjects.outbound import OutboundContact
from vault.subjects.store import identifier_digest

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class Request:
    """What every chunk of one request shares (a single lookup is a request of one)."""

    ctx: VaultContext
    actor: Actor
    purpose: Purpose
    #: The fields an allowed identifier reveals (checked against the purpose).
    fields: tuple[str, ...]
    kind: str
    now: datetime
    events: LookupEvents
    opener: Opener
    #: The announced contact's brand (None: no contact), which a brand-scoped consent must
    #: cover.
    brand: str | None = None


def batch_keys(ctx: VaultContext, kind: str, values: Sequence[object]) -> list[str | None]:
    """The database key per identifier (canonical subject id or blind-index digest);
    None = invalid."""
    if kind == "subject_id":
        return [canonical_id(v) for v in values]
    out: list[str | None] = []
    for v in values:
        try:
            out.append(identifier_digest(ctx, kind, v) if isinstance(v, str) else None)
        except InvalidInput:
            out.append(None)
    return out


async def read_and_decide(
    req: Request, reads: ReadPort, keys: Sequence[str | None]
) -> list[Outcome]:
    """Read the chunk (one statement), decide every key and reveal what is allowed."""
    wanted = list({k for k in keys if k is not None})
    rows: Sequence[Row] = []
    if len(wanted) == 1:  # a single lookup, or a chunk naming one subject
        rows = await reads.rows(
            subject_read(req.kind, req.fields, array=reads.arrays, one=True),
            {"purpose": req.purpose.id, "key": wanted[0]},
        )
    elif wanted:
        rows = await reads.rows(
            subject_read(req.kind, req.fields, array=reads.arrays),
            {"purpose": req.purpose.id, "keys": wanted},
        )
    outcomes = decide_keys(rows, req.purpose, req.fields, keys, req.now, brand=req.brand)
    return await req.opener.reveal(outcomes, keys)


async def prepare(
    req: Request,
    reads: ReadPort,
    keys: Sequence[str | None],
    start: int,
    fallback_ids: Sequence[str | None],
) -> tuple[list[Outcome], list[EventRecord]]:
    """The hot path up to the audit: outcomes and their events (lines `start`...), which
    may leave only once the caller has committed the events."""
    outcomes = await read_and_decide(req, reads, keys)
    return outcomes, req.events.records(outcomes, start, fallback_ids)


async def run_in_transaction(
    req: Request,
    conn: AsyncConnection,
    keys: Sequence[str | None],
    start: int,
    fallback_ids: Sequence[str | None],
    contact: OutboundContact | None,
    reserved_before: set[str],
    *,
    with_followup: bool,
) -> list[Outcome]:
    """Read, decide, reveal, reserve and audit in the caller's transaction."""
    outcomes = await read_and_decide(req, TransactionReads(conn), keys)
    if contact is not None:
        outcomes = await reserve(
            conn, req, contact, outcomes, reserved_before, with_followup=with_followup
        )
    await TransactionAudit(conn).append_many(req.events.records(outcomes, start, fallback_ids))
    return outcomes


async def reserve(
    conn: AsyncConnection,
    req: Request,
    contact: OutboundContact,
    outcomes: list[Outcome],
    reserved_before: set[str],
    *,
    with_followup: bool,
) -> list[Outcome]:
    """Reserve the contact's points for every allowed line, in the transaction; a full
    basket or a calamity cool-down turns the line into a denial. Reservations are made in
    subject-id order, so concurrent batches lock budget rows in the same order.

    One contact per subject and request: a subject named again is denied
    `duplicate_identifier` instead of paying twice; `reserved_before` carries the subjects
    already handled by earlier chunks of the request."""
    out = list(outcomes)
    allowed = sorted((o.row["id"], j) for j, o in enumerate(outcomes) if o.allow is not None)
    for subject_id, j in allowed:
        if subject_id in reserved_before:
            out[j] = Outcome(DUPLICATE_IDENTIFIER, outcomes[j].row)
            continue
        reserved_before.add(subject_id)
        got = await contact.reserve(
            conn,
            req.ctx,
            subject_id=subject_id,
            purpose_id=req.purpose.id,
            actor=req.actor,
            now=req.now,
            with_followup=with_followup,
        )
        if isinstance(got, Deny):
            out[j] = Outcome(got.reason, outcomes[j].row)
        else:
            out[j] = outcomes[j]._replace(reservation=got)
    return out
