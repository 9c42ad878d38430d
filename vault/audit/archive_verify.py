"""`tresor audit verify --archive`: the archived segments and the live table as one chain.

Each segment is read as a stream and checked like the live chain: every event's MAC
recomputed from the MAC before it, positions without gap, sequence numbers increasing, the
first segment starting at genesis and each next one at the MAC the previous one ended at.
Its trailer's checkpoint must sit at its last event, agree with it and carry a valid
Ed25519 signature. The manifest must be signed, and list the same segments with the same
SHA-256 as the `audit_archives` table. Content is checked before the SHA-256, so an edited,
deleted or inserted event is reported by its sequence number, not only as "file changed".

The live table is then verified from the end of the newest pruned segment as computed from
the archive itself (`vault.audit.verify.verify_chain` with that start), so the database's
record of where the archive ends is not trusted on its own word.
"""

from __future__ import annotations

import asyncio
import gzip
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from vault.audit.archive import archived, entry_of
from vault.audit.archive_format import MANIFEST_NAME, SegmentEntry, read_manifest, sha256_file
from vault.audit.archive_store import ArchiveStore
from vault.audit.chain_links import EVENT_COLUMNS, GENESIS, _canonical_values, _chain_key, _mac
from vault.audit.checkpoints import Checkpoint, _signing_key
from vault.audit.verify import VerifyReport, verify_chain
from vault.crypto import Mac, VerifyKey, same_digest
from vault.progress import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass
class ArchiveVerifyReport:
    segments: int = 0
    events: int = 0
    broken_seq: int | None = None
    problem: str | None = None
    #: The live table's check (None when the archive already failed).
    live: VerifyReport | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and (self.live is None or self.live.ok)


class _Broken(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq, self.problem = seq, problem


class _Line(msgspec.Struct):
    kind: str
    chain_pos: int = 0
    mac: str = ""
    event: dict[str, Any] = {}


_DECODE = msgspec.json.Decoder(_Line)


class _SegmentWalk:
    """The chain state while one segment's lines are read: what the next event must be."""

    def __init__(self, entry: SegmentEntry, key: Mac, start: tuple[int, str, int]) -> None:
        self.entry, self.key = entry, key
        self.position, self.mac, self.seq = start
        self.count = 0
        self.header: dict[str, Any] | None = None
        self.trailer: dict[str, Any] | None = None

    def line(self, number: int, raw: bytes) -> None:
        """Check one line; raises `_Broken` naming the event at fault."""
        name = self.entry.name
        try:
            item = msgspec.json.decode(raw)
            line = _DECODE.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Broken(self.seq + 1, f"{name} line {number} is not JSON") from exc
        if line.kind == "header" and number == 1:
            if item.get("prev_mac") != self.mac or item.get("first_pos") != self.position + 1:
                raise _Broken(
                    item.get("first_seq"),
                    f"segment {name} does not continue the chain at position {self.position + 1}",
                )
            self.header = item
            return
        if self.header is None:
            raise _Broken(self.entry.first_seq, f"segment {name} has no header")
        if self.trailer is not None:
            raise _Broken(self.seq, f"segment {name} has lines after its trailer")
        if line.kind == "trailer":
            self.trailer = item
            return
        self._event(number, line)

    def _event(self, number: int, line: _Line) -> None:
        seq = line.event.get("seq")
        if not isinstance(seq, int) or line.kind != "event":
            raise _Broken(self.seq + 1, f"{self.entry.name} line {number} is not an event")
        if line.chain_pos != self.position + 1:
            raise _Broken(
                seq,
                f"chain position {self.position + 1} is missing (event deleted before seq {seq})",
            )
        if seq <= self.seq:
            raise _Broken(seq, f"event seq {seq} is out of order (after seq {self.seq})")
        try:
            values = [line.event[name] for name in EVENT_COLUMNS]
        except KeyError:
            raise _Broken(seq, f"event seq {seq} lacks a column") from None
        mac = _mac(self.key, self.mac, line.chain_pos, _canonical_values(values))
        if not same_digest(mac, line.mac):
            raise _Broken(seq, f"event seq {seq} does not match its MAC (altered or moved)")
        self.position, self.mac, self.seq = line.chain_pos, mac, seq
        self.count += 1


def check_segment(
    path: Path,
    entry: SegmentEntry,
    key: Mac,
    public: VerifyKey,
    start: tuple[int, str, int],
    progress: Progress = NO_PROGRESS,
) -> tuple[int, str, int]:
    """Check one segment file that must continue the chain at `start` (position, mac,
    seq), streaming its lines; the (position, mac, seq) it ends at. Raises `_Broken`
    naming the first bad event."""
    walk = _SegmentWalk(entry, key, start)
    reported = 0
    try:
        with gzip.open(path, "rb") as stream:
            for number, raw in enumerate(stream, 1):
                walk.line(number, raw)
                if walk.count - reported >= 10_000:
                    progress.advance(walk.count - reported)
                    reported = walk.count
    except (OSError, EOFError, zlib.error) as exc:
        raise _Broken(walk.seq + 1, f"segment {entry.name} is not gzip or cut short") from exc
    progress.advance(walk.count - reported)
    if walk.trailer is None:
        raise _Broken(walk.seq, f"segment {entry.name} has no trailer (cut short)")
    end = (walk.position, walk.mac, walk.seq)
    _check_trailer(entry, walk.trailer, walk.count, end, public)
    return end


def _check_trailer(
    entry: SegmentEntry,
    trailer: dict[str, Any],
    count: int,
    end: tuple[int, str, int],
    public: VerifyKey,
) -> None:
    position, head, seq = end
    if trailer.get("events") != count or count != entry.events:
        raise _Broken(seq, f"segment {entry.name} holds {count} events, not {entry.events}")
    try:
        checkpoint = Checkpoint.parse(msgspec.json.encode(trailer.get("checkpoint")))
    except ValueError:
        raise _Broken(seq, f"segment {entry.name} has no checkpoint") from None
    if (checkpoint.chain_pos, checkpoint.seq, checkpoint.head) != (position, seq, head):
        raise _Broken(seq, f"segment {entry.name}'s checkpoint disagrees with its events")
    if not checkpoint.signed_by(public):
        raise _Broken(seq, f"segment {entry.name}'s checkpoint has a bad signature")
    if (entry.last_seq, entry.last_pos, entry.last_mac) != (seq, position, head):
        raise _Broken(seq, f"segment {entry.name} ends elsewhere than the manifest says")


def _compare(manifest: list[SegmentEntry], table: list[SegmentEntry]) -> None:
    """The manifest and the database must list the same segments, digests included."""
    listed = {e.month: e for e in manifest}
    for row in table:
        other = listed.get(row.month)
        if other is None:
            raise _Broken(row.first_seq, f"the manifest lacks month {row.month}")
        if other != row:
            raise _Broken(row.first_seq, f"the manifest and the database differ on {row.month}")
    if len(listed) != len(table):
        extra = sorted(set(listed) - {row.month for row in table})
        raise _Broken(None, f"the database lacks archived month(s) {', '.join(extra)}")


async def _segments(
    ctx: VaultContext,
    store: ArchiveStore,
    manifest: list[SegmentEntry],
    pruned: set[str],
    public: VerifyKey,
    report: ArchiveVerifyReport,
    progress: Progress,
) -> tuple[int, str, int] | None:
    """Every segment in chain order, each fetched to a scratch file (memory stays flat);
    where the newest pruned one ends, as computed from the segments."""
    key = _chain_key(ctx)
    end, live_start = (0, GENESIS, 0), None
    with tempfile.TemporaryDirectory(prefix="archive-verify-", dir=ctx.settings.data_dir) as tmp:
        for entry in sorted(manifest, key=lambda e: e.first_seq):
            segment = Path(tmp) / entry.name
            if not await asyncio.to_thread(store.fetch, entry.name, segment):
                raise _Broken(entry.first_seq, f"segment {entry.name} is missing")
            end = await asyncio.to_thread(check_segment, segment, entry, key, public, end, progress)
            digest = await asyncio.to_thread(sha256_file, segment)
            segment.unlink()
            if digest != entry.sha256:
                raise _Broken(entry.first_seq, f"segment {entry.name} differs from its SHA-256")
            report.segments += 1
            report.events += entry.events
            if entry.month in pruned:
                live_start = end
    return live_start


async def verify_archive(
    ctx: VaultContext,
    store: ArchiveStore,
    *,
    public_key: VerifyKey | None = None,
    checkpoint_file: Path | None = None,
    workers: int = 1,
    progress: Progress = NO_PROGRESS,
) -> ArchiveVerifyReport:
    """Every segment in chain order, then the live table from where pruning left it."""
    report = ArchiveVerifyReport()
    public = public_key or _signing_key(ctx).verify_key
    await asyncio.to_thread(store.check)
    rows = await archived(ctx)
    table = [entry_of(row) for row in rows]
    pruned = {row.month for row in rows if row.pruned_at is not None}
    try:
        data = await asyncio.to_thread(store.get, MANIFEST_NAME)
        if data is None:
            if table:
                raise _Broken(None, "the archive has no manifest")
            manifest: list[SegmentEntry] = []
        else:
            try:
                manifest = read_manifest(data, public)
            except ValueError as exc:
                raise _Broken(None, str(exc)) from None
        _compare(manifest, table)
        progress.begin("verify audit archive", sum(e.events for e in manifest))
        live_start = await _segments(ctx, store, manifest, pruned, public, report, progress)
    except _Broken as broken:
        report.broken_seq, report.problem = broken.seq, broken.problem
        return report
    report.live = await verify_chain(
        ctx,
        public_key=public,
        checkpoint_file=checkpoint_file,
        workers=workers,
        progress=progress,
        start=live_start,
    )
    return report
