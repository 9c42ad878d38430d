"""The checkpoint file outside the database.

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
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import bindparam, select

from vault.audit.checkpoints import Checkpoint
from vault.clock import as_utc
from vault.storage.audit_tables import audit_seals

if TYPE_CHECKING:
    from vault.context import VaultContext

log = structlog.get_logger("tresor.audit")


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
