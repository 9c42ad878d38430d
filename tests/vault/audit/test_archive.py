"""Archive, prune and verify --archive of the audit trail, on both databases."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update

from vault.audit import chain as audit_chain
from vault.audit.archive import archive_before
from vault.audit.archive_format import segment_name
from vault.audit.archive_months import parse_month
from vault.audit.archive_store import ArchiveUnreachable, DirectoryStore, open_store
from vault.audit.archive_verify import verify_archive
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.audit.prune import drop_month, prune
from vault.audit.verify import verify_chain
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.errors import InvalidInput
from vault.storage.audit_tables import audit_archives, audit_events, audit_seals

ADMIN = Actor("admin", "cli@test")
#: Events per month: January, February, March 2026.
MONTHS = {"2026-01": 4, "2026-02": 3, "2026-03": 2}


async def _events(vault: VaultContext, clock: FrozenClock, month: str, n: int) -> None:
    for i in range(n):
        clock.set(datetime.fromisoformat(f"{month}-10T08:00:00+00:00") + timedelta(hours=i))
        async with vault.transaction() as conn:
            await record(
                conn,
                at=vault.clock.now(),
                actor=Actor("client", "shop", f"req-{month}-{i}"),
                action=AuditAction.LOOKUP,
                decision=Decision.ALLOW,
                subject_id="0f0e0d0c-0b0a-4908-8706-050403020100",
                purpose="order.delivery",
                fields=["name"],
            )
    await audit_chain.seal_all(vault, grace=timedelta(0))  # one checkpoint at the end


async def _trail(vault: VaultContext, clock: FrozenClock) -> None:
    for month, n in MONTHS.items():
        await _events(vault, clock, month, n)
    clock.set(datetime(2026, 4, 2, tzinfo=UTC))


def _store(tmp_path: Path) -> DirectoryStore:
    target = tmp_path / "archive"
    target.mkdir(exist_ok=True)
    store = open_store(str(target))
    assert isinstance(store, DirectoryStore)
    return store


async def _count(vault: VaultContext, table: object) -> int:
    async with vault.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def _actions(vault: VaultContext) -> list[str]:
    """The action of every event on the live trail, in sequence order."""
    async with vault.engine.connect() as conn:
        query = select(audit_events.c.action).order_by(audit_events.c.seq)
        return [row[0] for row in await conn.execute(query)]


async def _tamper(vault: VaultContext, stmt: object) -> None:
    async with vault.engine.begin() as conn:
        await conn.execute(stmt)  # type: ignore[arg-type]


async def test_archive_prune_and_verify_archive_as_one_chain(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """Archiving January and February writes two segments and a manifest, pruning with one
    month of retention deletes exactly their 7 events, and both `verify --archive` and the
    plain verify (anchored at the archive's end) pass, also over events added later."""
    await _trail(vault, clock)
    store = _store(tmp_path)
    report = await archive_before(vault, "2026-03", store, actor=ADMIN)
    assert report.months == ["2026-01", "2026-02"] and report.events == 7
    assert sorted(p.name for p in store.path.iterdir()) == [
        "audit-2026-01.jsonl.gz",
        "audit-2026-02.jsonl.gz",
        "audit-manifest.json",
    ]
    again = await archive_before(vault, "2026-03", store, actor=ADMIN)
    assert again.months == [] and await _count(vault, audit_archives) == 2

    pruned = await prune(vault, 1, actor=ADMIN)
    assert pruned.months == ["2026-01", "2026-02"] and pruned.events == 7
    assert await _actions(vault) == ["client:contact:lookup"] * 2 + [
        "admin:audit:archive",
        "admin:audit:archive",
        "admin:audit:prune",
        "admin:audit:prune",
    ]
    assert await _count(vault, audit_seals) == 2  # the four new events are not sealed yet
    await _events(vault, clock, "2026-04", 2)

    plain = await verify_chain(vault)
    assert plain.ok, plain.problem
    assert plain.verified == 8 and plain.started_after == 7
    full = await verify_archive(vault, store)
    assert full.ok, (full.problem, full.live and full.live.problem)
    assert (full.segments, full.events, full.live and full.live.verified) == (2, 7, 8)


async def test_prune_never_deletes_unarchived_or_recent_months(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """With January archived only, a prune past every month's retention deletes January's
    4 events and nothing else; `drop_month` refuses a month that is not archived."""
    await _trail(vault, clock)
    await archive_before(vault, "2026-02", _store(tmp_path), actor=ADMIN)
    report = await prune(vault, 1, actor=ADMIN)
    assert report.months == ["2026-01"] and await _count(vault, audit_events) == 5 + 2
    with pytest.raises(ValueError, match="not archived"):
        await drop_month(vault, "2026-02")
    assert await _count(vault, audit_events) == 7
    assert (await verify_chain(vault)).ok


def _rewrite(path: Path, change: object) -> None:
    lines = gzip.decompress(path.read_bytes()).splitlines()
    lines = change(lines)  # type: ignore[operator]
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))


def _edit(lines: list[bytes]) -> list[bytes]:
    item = json.loads(lines[2])
    item["event"]["decision"] = "deny"
    return [*lines[:2], json.dumps(item).encode(), *lines[3:]]


def _delete(lines: list[bytes]) -> list[bytes]:
    return [*lines[:2], *lines[3:]]


def _insert(lines: list[bytes]) -> list[bytes]:
    item = json.loads(lines[2])
    item["event"]["seq"] += 1000
    return [*lines[:3], json.dumps(item).encode(), *lines[3:]]


@pytest.mark.parametrize(
    ("change", "named", "problem"),
    [
        (_edit, 2, "does not match its MAC"),
        (_delete, 3, "chain position 2 is missing"),
        (_insert, 1002, "chain position 3 is missing"),
    ],
)
async def test_a_tampered_archived_segment_names_the_event(
    vault: VaultContext,
    clock: FrozenClock,
    tmp_path: Path,
    change: object,
    named: int,
    problem: str,
) -> None:
    """An event edited in, deleted from or inserted into an archived segment is reported by
    its sequence number before the segment's digest is compared."""
    await _trail(vault, clock)
    store = _store(tmp_path)
    await archive_before(vault, "2026-03", store, actor=ADMIN)
    await prune(vault, 1, actor=ADMIN)
    _rewrite(store.path / segment_name("2026-01"), change)
    report = await verify_archive(vault, store)
    assert not report.ok and report.live is None
    assert report.broken_seq == named and problem in (report.problem or "")


async def test_a_tampered_live_table_after_pruning_names_the_event(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """After archive and prune, an edited, a deleted and an inserted live event are each
    found by the plain verify, naming its sequence number."""
    await _trail(vault, clock)
    await archive_before(vault, "2026-02", _store(tmp_path), actor=ADMIN)
    await prune(vault, 1, actor=ADMIN)  # January gone: seq 5.. stay
    await _tamper(vault, update(audit_events).where(audit_events.c.seq == 6).values(reason="x"))
    edited = await verify_chain(vault)
    assert edited.broken_seq == 6 and "does not match" in (edited.problem or "")
    await _tamper(vault, update(audit_events).where(audit_events.c.seq == 6).values(reason=None))
    assert (await verify_chain(vault)).ok

    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(audit_events).where(audit_events.c.seq == 6))).one()
        seal = (await conn.execute(select(audit_seals).where(audit_seals.c.seq == 6))).one()
    await _tamper(vault, delete(audit_events).where(audit_events.c.seq == 6))
    await _tamper(vault, delete(audit_seals).where(audit_seals.c.seq == 6))
    deleted = await verify_chain(vault)
    assert deleted.broken_seq == 7 and "missing" in (deleted.problem or "")
    await _tamper(vault, insert(audit_events).values(**row._asdict()))
    await _tamper(vault, insert(audit_seals).values(**seal._asdict()))
    assert (await verify_chain(vault)).ok

    forged = {**row._asdict(), "seq": 1000, "reason": "forged"}
    await _tamper(vault, insert(audit_events).values(**forged))
    await _tamper(vault, insert(audit_seals).values(seq=1000, chain_pos=10, chain_mac="0" * 64))
    inserted = await verify_chain(vault)
    assert inserted.broken_seq == 1000 and "does not match" in (inserted.problem or "")


async def test_the_live_start_must_be_a_signed_checkpoint(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """Moving the recorded end of a pruned month (to hide deleted live events) is found:
    the chain's start no longer matches the checkpoint signed at the segment's end."""
    await _trail(vault, clock)
    await archive_before(vault, "2026-02", _store(tmp_path), actor=ADMIN)
    await prune(vault, 1, actor=ADMIN)
    async with vault.engine.connect() as conn:
        seal = (await conn.execute(select(audit_seals).where(audit_seals.c.seq == 5))).one()
    await _tamper(vault, delete(audit_events).where(audit_events.c.seq == 5))
    await _tamper(
        vault,
        update(audit_archives).values(last_seq=5, last_pos=seal.chain_pos, last_mac=seal.chain_mac),
    )
    report = await verify_chain(vault)
    assert not report.ok and "is not a checkpoint" in (report.problem or "")


async def test_bad_month_and_unreachable_destination_change_nothing(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """`2026-13` is no month and a missing directory is no destination: both raise
    before anything is written."""
    await _trail(vault, clock)
    with pytest.raises(InvalidInput):
        parse_month("2026-13")
    with pytest.raises(ArchiveUnreachable):
        await archive_before(vault, "2026-03", open_store(str(tmp_path / "missing")), actor=ADMIN)
    assert await _count(vault, audit_archives) == 0
    assert not (tmp_path / "missing").exists()
