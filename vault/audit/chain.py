"""Tamper evidence for the audit trail: an HMAC chain sealed in batches, signed checkpoints.

Requests only append events; they never wait for the chain. A single sealer (on PostgreSQL
guarded by an advisory lock, so any number of `tresor serve` processes may run it) takes the
unsealed events in sequence order and gives each a chain position and
`mac = HMAC-SHA256(audit_key, previous mac | position | canonical event)`. Every so often it
signs the chain head with Ed25519, so an auditor holding only the public key can check that
the trail up to that point was not rewritten or truncated.

Sequence numbers are allocated before commit, so an event with a lower number can become
visible after a higher one (a slower transaction), and a rolled-back transaction leaves a
hole for ever. The sealer therefore seals in sequence order up to the first hole and waits
for it; a hole older than `grace` is taken to be a rollback and skipped. The chain thus
visits events in strictly increasing sequence order, which `verify` checks: a row slipped in
behind the sealed part later is reported as inserted.

Checkpoints in the database alone do not stop a database writer from deleting the newest
events together with their seals and checkpoint rows. So every signed checkpoint is also
appended to a file outside the database (`TRESOR_AUDIT_CHECKPOINT_FILE`, by default
`audit-checkpoints.jsonl` in the data dir), at least every `TRESOR_AUDIT_CHECKPOINT_SECONDS`
while events are sealed, and `verify` fails when the chain is shorter than, or differs
from, the newest checkpoint there. A checkpoint is appended only while the chain still
contains the file's last one, so a rewritten trail never gets a checkpoint that agrees.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from sqlalchemy import Select, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.chain_head import head_seq, read_head
from vault.clock import as_utc
from vault.crypto import Mac, Signer, VerifyKey
from vault.errors import InvariantViolation
from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals
from vault.storage.dialect import asyncpg_connection, try_advisory_xact_lock
from vault.storage.pg_direct import Compiled

if TYPE_CHECKING:
    from vault.context import VaultContext

GENESIS = "0" * 64
log = structlog.get_logger("tresor.audit")
#: How long a hole in the sequence may stay open before it counts as a rolled-back event.
DEFAULT_GRACE = timedelta(seconds=10)
#: Any fixed 64-bit number; names the lock that makes one sealer run at a time on PostgreSQL.
SEALER_LOCK_ID = 0x7472_6573_6F72_0001
EVENT_COLUMNS = (
    "seq",
    "at",
    "request_id",
    "actor_type",
    "actor_id",
    "action",
    "subject_id",
    "purpose",
    "fields",
    "decision",
    "reason",
    "consent_id",
    "detail",
)


_AT = EVENT_COLUMNS.index("at")
if EVENT_COLUMNS[0] != "seq":
    raise InvariantViolation(
        "expected EVENT_COLUMNS[0] == 'seq': the sealer reads records by position"
    )
#: The chain's canonical encoding is compact JSON of a list of strings, integers and nulls,
#: UTF-8, nothing escaped but what JSON requires: `json.JSONEncoder(separators=(",", ":"),
#: ensure_ascii=False)` wrote it first; msgspec writes the same bytes faster
#: (docs/performance.md; tests/vault/audit/test_chain.py proves the two agree, so existing
#: chains still verify).
_CANONICAL = msgspec.json.Encoder()


def canonical_event(row: Any) -> bytes:
    """The bytes the MAC covers: every column of the event except the chain columns.

    `row` is anything that yields columns by name: a dict, an asyncpg record, a SQLAlchemy
    row (through its mapping)."""
    by_name = getattr(row, "_mapping", row)
    return _canonical_values([by_name[name] for name in EVENT_COLUMNS])


def _canonical_values(values: list[Any]) -> bytes:
    """`canonical_event` of the event's column values in `EVENT_COLUMNS` order (a fresh
    list: its timestamp is replaced in place)."""
    at = values[_AT]  # the only timestamp among the columns
    if isinstance(at, datetime):
        values[_AT] = as_utc(at).isoformat()
    return _CANONICAL.encode(values)


def _chain_key(ctx: VaultContext) -> Mac:
    """The chain's MAC: under `audit_key`, a random secret of the keyring that serves this
    one MAC (not derived from the server secret: that would change every stored seal)."""
    return Mac(ctx.secrets.audit_key)


def chain_mac(key: Mac, previous: str, position: int, row: Any) -> str:
    return _mac(key, previous, position, canonical_event(row))


def _mac(key: Mac, previous: str, position: int, canonical: bytes) -> str:
    return key.digest(f"{previous}|{position}|".encode() + canonical)


def _checkpoint_message(position: int, seq: int, head: str, at: datetime) -> bytes:
    stamp = as_utc(at).isoformat()
    return f"tresor-audit-checkpoint|v1|{position}|{seq}|{head}|{stamp}".encode()


def _signing_key(ctx: VaultContext) -> Signer:
    ensure = getattr(ctx.kek, "ensure_signing_key", None)
    raw = ensure() if ensure is not None else ctx.secrets.signing_key
    if raw is None:
        raise RuntimeError("no checkpoint signing key in the keyring")
    return Signer(raw)


def public_key_pem(ctx: VaultContext) -> str:
    """The checkpoint verification key, for auditors outside the vault."""
    return _signing_key(ctx).verify_key.pem()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "the chain had `head` at `chain_pos` (event `seq`) at `at`"."""

    chain_pos: int
    seq: int
    head: str
    at: datetime
    key_id: str
    signature: str

    def message(self) -> bytes:
        return _checkpoint_message(self.chain_pos, self.seq, self.head, self.at)

    def line(self) -> bytes:
        """One line of the checkpoint file: compact JSON, ids and digests only."""
        return (
            _CANONICAL.encode(
                {
                    "v": 1,
                    "chain_pos": self.chain_pos,
                    "seq": self.seq,
                    "head": self.head,
                    "at": as_utc(self.at).isoformat(),
                    "key_id": self.key_id,
                    "signature": self.signature,
                }
            )
            + b"\n"
        )

    @classmethod
    def parse(cls, line: bytes) -> Checkpoint:
        """A line of the checkpoint file; `ValueError` for anything else."""
        try:
            raw = msgspec.json.decode(line, type=_CheckpointLine)
            return cls(
                raw.chain_pos,
                raw.seq,
                raw.head,
                datetime.fromisoformat(raw.at),
                raw.key_id,
                raw.signature,
            )
        except (msgspec.DecodeError, ValueError) as exc:
            raise ValueError("not a checkpoint line") from exc

    def signed_by(self, public: VerifyKey) -> bool:
        return _signed(public, self.signature, self.message())


def _signed(public: VerifyKey, signature: str, message: bytes) -> bool:
    """Whether the base64 `signature` is `public`'s signature of `message`."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    return public.verify(raw, message)


class _CheckpointLine(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    chain_pos: int
    seq: int
    head: str
    at: str
    key_id: str
    signature: str


# -- the checkpoint file outside the database -----------------------------------------------


def append_checkpoint_line(path: Path, checkpoint: Checkpoint) -> None:
    """Append one checkpoint line and fsync it. `O_APPEND` keeps concurrent writers (nodes
    sharing the file) from interleaving inside a line; a new file gets mode 0600 and its
    directory entry is synced too. A previous line cut short by a crash is closed first."""
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        line = checkpoint.line()
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def last_checkpoint_line(path: Path) -> Checkpoint | None:
    """The file's last checkpoint (read from its tail), None for a missing or empty file;
    `ValueError` when the last line is not a checkpoint."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 4096))
            tail = f.read()
    except FileNotFoundError:
        return None
    lines = [line for line in tail.split(b"\n") if line.strip()]
    return Checkpoint.parse(lines[-1]) if lines else None


@dataclass
class CheckpointFile:
    """What `verify` found in the checkpoint file: its newest checkpoint (by position),
    how many lines it has, and the first line that is not a checkpoint."""

    path: Path
    exists: bool = False
    lines: int = 0
    newest: Checkpoint | None = None
    bad_line: int | None = None


def read_checkpoint_file(path: Path) -> CheckpointFile:
    """Stream the file once, keeping only the newest checkpoint (memory stays flat)."""
    found = CheckpointFile(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return found
    found.exists = True
    with f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            found.lines += 1
            try:
                checkpoint = Checkpoint.parse(line)
            except ValueError:
                found.bad_line = found.bad_line or number
                continue
            if found.newest is None or checkpoint.chain_pos > found.newest.chain_pos:
                found.newest = checkpoint
    return found


_SEAL_OF = select(audit_seals.c.chain_pos, audit_seals.c.chain_mac).where(
    audit_seals.c.seq == bindparam("seq")
)


async def _chain_contains(ctx: VaultContext, checkpoint: Checkpoint) -> bool:
    """Whether the chain in the database still has the checkpoint's head at its position
    (one read along the seal table's primary key)."""
    rows = await ctx.read_rows(_SEAL_OF, {"seq": checkpoint.seq})
    return bool(rows) and (rows[0]["chain_pos"], rows[0]["chain_mac"]) == (
        checkpoint.chain_pos,
        checkpoint.head,
    )


def _too_soon(ctx: VaultContext, previous: Checkpoint, checkpoint: Checkpoint) -> bool:
    interval = timedelta(seconds=ctx.settings.checkpoint_seconds)
    gap = as_utc(checkpoint.at) - as_utc(previous.at)
    return bool(gap < interval)


async def anchor_checkpoint(
    ctx: VaultContext, checkpoint: Checkpoint, *, force: bool = False
) -> bool:
    """Append a committed checkpoint to the checkpoint file; True when the file covers its
    position afterwards.

    Unless `force`d, at most one line per `TRESOR_AUDIT_CHECKPOINT_SECONDS`: under load the
    database gets a checkpoint every thousand events, the file (an fsync each) need not;
    the sealer anchors the head once a burst is over (`Sealer`). Refused (logged as
    `audit_checkpoint_diverged`, positions only) while the chain no longer contains the
    file's last checkpoint: after a rewrite or truncation of the trail, or a restore from a
    backup, the file keeps naming the old head and `verify` keeps failing until an operator
    has looked (docs/operations.md). A failed write is logged by error type.
    """
    path = ctx.settings.audit_checkpoint_path
    try:
        previous = await asyncio.to_thread(last_checkpoint_line, path)
    except ValueError:
        previous = None  # a damaged last line: `verify` names it; keep anchoring
        log.error("audit_checkpoint_file_unreadable")
    except OSError as exc:
        log.error("audit_checkpoint_file_failed", error=type(exc).__name__)
        return False
    if not force and previous is not None and _too_soon(ctx, previous, checkpoint):
        return False
    if previous is not None and not await _chain_contains(ctx, previous):
        log.error(
            "audit_checkpoint_diverged",
            file_position=previous.chain_pos,
            file_seq=previous.seq,
            position=checkpoint.chain_pos,
        )
        return False
    if previous is not None and previous.chain_pos >= checkpoint.chain_pos:
        return True  # already covered (another node sharing the file was first)
    try:
        await asyncio.to_thread(append_checkpoint_line, path, checkpoint)
    except OSError as exc:
        log.error("audit_checkpoint_file_failed", error=type(exc).__name__)
        return False
    return True


@dataclass(frozen=True, slots=True)
class SealReport:
    sealed: int
    head_position: int
    checkpoint: int | None
    waiting_for_gap: bool
    #: Whether the checkpoint also went into the checkpoint file.
    anchored: bool = False


#: How many events follow the chain head at `after` (all of them unsealed, by construction).
_BACKLOG = select(func.count().label("backlog")).where(audit_events.c.seq > bindparam("after"))
#: The unsealed events after the chain head, in sequence order, along the primary key.
_UNSEALED = (
    select(*(audit_events.c[name] for name in EVENT_COLUMNS))
    .where(audit_events.c.seq > bindparam("last_seq"))
    .order_by(audit_events.c.seq)
    .limit(bindparam("batch"))
)
_UNSEALED_PG = Compiled(_UNSEALED)
_SEAL_COLUMNS = ["seq", "chain_pos", "chain_mac"]
#: Events with their seal (chain_pos and chain_mac are NULL for an unsealed event), for
#: readers that show or export whether an event is sealed.
EVENTS_WITH_SEALS = audit_events.outerjoin(audit_seals, audit_seals.c.seq == audit_events.c.seq)


def select_events_with_seals() -> Select[Any]:
    """`SELECT` of every event column plus `chain_pos` and `chain_mac` from its seal."""
    return select(audit_events, audit_seals.c.chain_pos, audit_seals.c.chain_mac).select_from(
        EVENTS_WITH_SEALS
    )


async def _try_lock(conn: AsyncConnection) -> bool:
    """One sealer at a time (SQLite's write transactions are serialised already)."""
    return await try_advisory_xact_lock(conn, SEALER_LOCK_ID)


async def seal_pending(
    ctx: VaultContext,
    *,
    batch: int = 5000,
    grace: timedelta = DEFAULT_GRACE,
    checkpoint_every: int = 1000,
    checkpoint_interval: timedelta | None = None,
) -> SealReport:
    """Seal up to `batch` events in one transaction; returns what was done.

    Writes a signed checkpoint when `checkpoint_every` events or `checkpoint_interval`
    (default `TRESOR_AUDIT_CHECKPOINT_SECONDS`) have passed since the last one (and
    something new was sealed), and after the commit appends it to the checkpoint file.
    """
    if checkpoint_interval is None:
        checkpoint_interval = timedelta(seconds=ctx.settings.checkpoint_seconds)
    now = ctx.clock.now()
    key = _chain_key(ctx)
    async with ctx.transaction() as conn:
        if not await _try_lock(conn):
            return SealReport(0, -1, None, False)
        # The newest checkpoint first: its `seq` bounds the head read to the newest blocks.
        last = await _last_checkpoint(conn)
        head = await read_head(conn, last.seq if last is not None else None)
        position, previous, last_seq = head if head is not None else (0, GENESIS, 0)
        params = {"last_seq": last_seq, "batch": batch}
        # The hot loop of sealing runs on the driver connection (PostgreSQL), inside this
        # same transaction: SQLAlchemy's per-row result and per-parameter-set processing
        # cost more than the MACs (see vault/storage/pg_direct.py).
        driver = await asyncpg_connection(conn)
        if driver is not None:
            # Records of EVENT_COLUMNS (seq first): the MAC input by position, no name lookups.
            rows: Any = await driver.fetch(_UNSEALED_PG.sql, *_UNSEALED_PG.args(params))
        else:
            rows = (await conn.execute(_UNSEALED, params)).all()
        seqs: list[int] = []
        positions: list[int] = []
        macs: list[str] = []
        waiting = False
        expected = last_seq + 1
        for n, row in enumerate(rows, 1):
            if n % 500 == 0:
                # Inline sealing (SQLite) shares the event loop with requests: let them run.
                await asyncio.sleep(0)
            seq = row[0]
            if seq != expected and as_utc(row[_AT]) > now - grace:
                waiting = True  # a lower sequence number may still commit
                break
            position += 1
            previous = _mac(key, previous, position, _canonical_values(list(row)))
            seqs.append(seq)
            positions.append(position)
            macs.append(previous)
            expected = seq + 1
        if seqs and driver is not None:
            # One binary COPY of narrow rows for the whole batch, in this transaction.
            await driver.copy_records_to_table(
                "audit_seals",
                records=zip(seqs, positions, macs, strict=True),
                columns=_SEAL_COLUMNS,
            )
        elif seqs:
            await conn.execute(
                insert(audit_seals),
                [
                    {"seq": q, "chain_pos": p, "chain_mac": m}
                    for q, p, m in zip(seqs, positions, macs, strict=True)
                ],
            )
        signed = None
        if seqs:
            signed = await _maybe_checkpoint(
                ctx,
                conn,
                last,
                position,
                seqs[-1],
                previous,
                now,
                every=checkpoint_every,
                interval=checkpoint_interval,
            )
    anchored = False
    if signed is not None:  # committed: only now may it leave the database
        anchored = await anchor_checkpoint(ctx, signed)
    return SealReport(len(seqs), position, signed.chain_pos if signed else None, waiting, anchored)


async def _maybe_checkpoint(
    ctx: VaultContext,
    conn: AsyncConnection,
    last: Any,
    position: int,
    seq: int,
    head: str,
    now: datetime,
    *,
    every: int,
    interval: timedelta,
    force: bool = False,
) -> Checkpoint | None:
    """Sign and store a checkpoint of the head at `position` when one is due after `last`
    (`_last_checkpoint`, read in this transaction under the sealer's lock); the caller
    anchors it in the checkpoint file after its transaction committed."""
    if last is not None and last.chain_pos >= position:
        return None
    due = (
        force
        or last is None
        or position - last.chain_pos >= every
        or now - as_utc(last.at) >= interval
    )
    if not due:
        return None
    return await _sign_checkpoint(ctx, conn, position, seq, head, now)


async def _last_checkpoint(conn: AsyncConnection) -> Any:
    """(chain_pos, at, seq) of the newest checkpoint in the database, or None."""
    return (
        await conn.execute(
            select(audit_checkpoints.c.chain_pos, audit_checkpoints.c.at, audit_checkpoints.c.seq)
            .order_by(audit_checkpoints.c.chain_pos.desc())
            .limit(1)
        )
    ).first()


async def _sign_checkpoint(
    ctx: VaultContext, conn: AsyncConnection, position: int, seq: int, head: str, now: datetime
) -> Checkpoint:
    private = _signing_key(ctx)
    signature = private.sign(_checkpoint_message(position, seq, head, now))
    checkpoint = Checkpoint(
        position,
        seq,
        head,
        now,
        private.verify_key.key_id,
        base64.b64encode(signature).decode(),
    )
    await conn.execute(
        insert(audit_checkpoints).values(
            chain_pos=position,
            seq=seq,
            head=head,
            at=now,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )
    )
    return checkpoint


async def checkpoint_head(ctx: VaultContext) -> bool:
    """Make a signed checkpoint cover the chain head, in the database (unless one does
    already) and in the checkpoint file; True when both cover it afterwards (False: another
    node's sealer holds the lock, or the file could not take it)."""
    async with ctx.transaction() as conn:
        if not await _try_lock(conn):
            return False
        last = await _newest_checkpoint(conn)
        head = await read_head(conn, last.seq if last is not None else None)
        if head is None:
            return True
        if last is not None and last.chain_pos >= head[0]:
            signed = last
        else:
            signed = await _sign_checkpoint(ctx, conn, head[0], head[2], head[1], ctx.clock.now())
    return await anchor_checkpoint(ctx, signed, force=True)


async def newest_checkpoint(ctx: VaultContext) -> Checkpoint | None:
    """The newest signed checkpoint in the database, as it would stand in the file."""
    async with ctx.transaction() as conn:
        return await _newest_checkpoint(conn)


async def _newest_checkpoint(conn: AsyncConnection) -> Checkpoint | None:
    row = (
        await conn.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.chain_pos.desc()).limit(1)
        )
    ).first()
    if row is None:
        return None
    return Checkpoint(row.chain_pos, row.seq, row.head, row.at, row.key_id, row.signature)


class Sealer:
    """The periodic sealer's rounds, with the checkpoint cadence of a quiet trail.

    `seal_pending` checkpoints (and anchors in the file) while events keep coming; when
    they stop, the last ones sealed would stay outside the file until the next event, free
    to be deleted unnoticed. So once a round has sealed events the file does not cover,
    the head is checkpointed and anchored `TRESOR_AUDIT_CHECKPOINT_SECONDS` later even if
    nothing more comes (and retried at that pace if the file refuses it). What this
    remembers is only a hint: `checkpoint_head` asks the database and the file.
    """

    def __init__(self, ctx: VaultContext) -> None:
        self.ctx = ctx
        self._due: datetime | None = None
        self._fresh = True

    async def round(self) -> SealReport:
        report = await seal_pending(self.ctx)
        now = self.ctx.clock.now()
        if self._fresh:  # a head left uncovered before a restart is due at once
            self._fresh, self._due = False, now
        interval = timedelta(seconds=self.ctx.settings.checkpoint_seconds)
        if report.anchored:
            self._due = None
        elif report.sealed and self._due is None:
            self._due = now + interval
        elif not report.sealed and self._due is not None and now >= self._due:
            self._due = None if await checkpoint_head(self.ctx) else now + interval
        return report


async def seal_all(
    ctx: VaultContext, *, grace: timedelta = DEFAULT_GRACE, max_wait_seconds: float = 0.0
) -> int:
    """Seal until nothing sealable is pending, then checkpoint the head (clean shutdown).

    With `max_wait_seconds`, waits (in real time) for a young hole in the sequence to fill or
    age past `grace`, so a shutdown right after a rollback still seals what came after it.
    """
    total = 0
    deadline = time.monotonic() + max_wait_seconds
    while True:
        report = await seal_pending(ctx, grace=grace)
        total += report.sealed
        if report.sealed:
            continue
        if report.waiting_for_gap and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            continue
        break
    await checkpoint_head(ctx)
    return total


async def unsealed_count(ctx: VaultContext) -> int:
    """Events appended after the chain head (the sealer's backlog), counted along the
    primary key after the head's `seq` was read (`chain_head.head_seq`), in reads that take
    no write lock; a round sealed in between makes it one batch too high for a moment. Rows
    slipped in *behind* the head are `vault.audit.verify`'s business."""
    rows = await ctx.read_rows(_BACKLOG, {"after": await head_seq(ctx)})
    return int(rows[0]["backlog"])
