"""Verification in parallel ranges and since the last recorded checkpoint, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from vault.audit import chain as audit_chain
from vault.audit import chain_links, checkpoints, verify_pages
from vault.audit import verify as audit_verify
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events, audit_seals

NOW = timedelta(0)


class Recorder:
    """A `vault.progress.Progress` that keeps what it was told."""

    def __init__(self) -> None:
        self.totals: list[int | None] = []
        self.done = 0

    def begin(self, task: str, total: int | None) -> None:
        self.totals.append(total)

    def advance(self, done: int) -> None:
        self.done += done


async def _sealed(vault: VaultContext, n: int) -> None:
    for i in range(n):
        async with vault.transaction() as conn:
            await record(
                conn,
                at=vault.clock.now(),
                actor=Actor("client", "shop", f"req-{i}"),
                action=AuditAction.LOOKUP,
                decision=Decision.ALLOW,
                subject_id="0f0e0d0c-0b0a-4908-8706-050403020100",
                purpose="order.delivery",
                fields=["name"],
            )
    await audit_chain.seal_all(vault, grace=NOW)


async def _seq_at(vault: VaultContext, position: int) -> int:
    async with vault.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(audit_seals.c.seq).where(audit_seals.c.chain_pos == position)
                )
            ).scalar_one()
        )


async def _tamper(vault: VaultContext, stmt: object) -> None:
    async with vault.engine.begin() as conn:
        await conn.execute(stmt)  # type: ignore[arg-type]


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> int:
    """Ranges in worker processes even for a small trail: the number of workers."""
    monkeypatch.setattr(audit_verify, "PARALLEL_THRESHOLD", 1)
    return 2


async def test_parallel_ranges_verify_a_clean_chain_once_each(
    vault: VaultContext, parallel: int
) -> None:
    """Two worker processes over eight ranges verify each of 37 events once, and progress
    counts each once."""
    await _sealed(vault, 37)
    progress = Recorder()
    report = await audit_verify.verify_chain(vault, workers=parallel, page=4, progress=progress)
    assert report.ok, report.problem
    assert report.verified == 37 and report.unsealed == 0
    assert progress.totals == [37] and progress.done == 37


async def test_parallel_ranges_name_an_edited_event(vault: VaultContext, parallel: int) -> None:
    """An event edited in a later range is reported at its sequence number."""
    await _sealed(vault, 37)
    seq = await _seq_at(vault, 30)
    await _tamper(vault, update(audit_events).where(audit_events.c.seq == seq).values(purpose="x"))
    report = await audit_verify.verify_chain(vault, workers=parallel, page=4)
    assert not report.ok and report.broken_seq == seq
    assert "does not match its seal" in (report.problem or "")


async def test_parallel_ranges_find_a_deletion_at_a_range_boundary(
    vault: VaultContext, parallel: int
) -> None:
    """Deleting the last event of one range (with its seal) is found by the next range,
    which starts from the seal before the gap, and named by the event after it."""
    await _sealed(vault, 40)
    # 40 events in 8 ranges of 5: position 10 ends the second range.
    seq, after = await _seq_at(vault, 10), await _seq_at(vault, 11)
    await _tamper(vault, delete(audit_seals).where(audit_seals.c.seq == seq))
    await _tamper(vault, delete(audit_events).where(audit_events.c.seq == seq))
    report = await audit_verify.verify_chain(vault, workers=parallel, page=4)
    assert not report.ok and report.broken_seq == after and "missing" in (report.problem or "")


async def test_since_checkpoint_verifies_only_what_is_new(vault: VaultContext) -> None:
    """After a full run recorded its newest checkpoint, `since_checkpoint` checks only the
    events after it, and a full run still checks all."""
    await _sealed(vault, 20)
    full = await audit_verify.verify_chain(vault)
    assert full.ok and full.verified == 20
    recorded = json.loads(audit_verify.verified_path(vault).read_text())
    assert recorded["chain_pos"] == 20 and set(recorded) == {"chain_pos", "seq", "head", "at"}
    await _sealed(vault, 7)
    since = await audit_verify.verify_chain(vault, since_checkpoint=True)
    assert since.ok, since.problem
    assert (since.started_after, since.verified) == (20, 7)
    assert (await audit_verify.verify_chain(vault)).verified == 27


async def test_since_checkpoint_names_an_edit_after_the_recorded_checkpoint(
    vault: VaultContext,
) -> None:
    """An edited event after the recorded checkpoint is found by the incremental run."""
    await _sealed(vault, 10)
    assert (await audit_verify.verify_chain(vault)).ok
    await _sealed(vault, 5)
    seq = await _seq_at(vault, 13)
    await _tamper(vault, update(audit_events).where(audit_events.c.seq == seq).values(reason="x"))
    report = await audit_verify.verify_chain(vault, since_checkpoint=True)
    assert not report.ok and report.broken_seq == seq


async def test_since_checkpoint_runs_in_full_when_the_record_is_not_in_the_chain(
    vault: VaultContext,
) -> None:
    """A recorded checkpoint the chain no longer contains (edited record, rewritten trail)
    is not trusted: the run starts at position 1 and finds the edit before it."""
    await _sealed(vault, 10)
    assert (await audit_verify.verify_chain(vault)).ok
    path = audit_verify.verified_path(vault)
    recorded = json.loads(path.read_text())
    path.write_text(json.dumps({**recorded, "head": "0" * 64}))
    seq = await _seq_at(vault, 3)
    await _tamper(vault, update(audit_events).where(audit_events.c.seq == seq).values(reason="x"))
    report = await audit_verify.verify_chain(vault, since_checkpoint=True)
    assert report.started_after == 0
    assert not report.ok and report.broken_seq == seq


def test_split_covers_the_range_without_overlap() -> None:
    """`split` returns half-open ranges that chain from `lo` to `hi`."""
    for lo, hi, parts in ((0, 37, 8), (5, 6, 4), (100, 1000, 3)):
        ranges = audit_verify.split(lo, hi, parts)
        assert ranges[0][0] == lo and ranges[-1][1] == hi
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert len(ranges) <= parts


async def test_a_rewritten_checkpoint_is_found_with_small_pages(vault: VaultContext) -> None:
    """A stored checkpoint whose head was rewritten (without the signing key) is reported
    by its signature while checkpoints are read page by page."""
    from vault.storage.audit_tables import audit_checkpoints

    await _sealed(vault, 12)
    await audit_chain.checkpoint_head(vault)
    async with vault.engine.connect() as conn:
        cps = (await conn.execute(select(audit_checkpoints.c.chain_pos))).scalars().all()
    assert cps
    await _tamper(
        vault,
        update(audit_checkpoints)
        .where(audit_checkpoints.c.chain_pos == cps[-1])
        .values(head="0" * 64),
    )
    report = await audit_verify.verify_chain(vault, page=3)
    assert not report.ok and "bad signature" in (report.problem or "")


async def test_a_signed_checkpoint_that_disagrees_is_named_with_small_pages(
    vault: VaultContext,
) -> None:
    """A validly signed checkpoint whose head is not the chain's, read with the page of
    events it falls in, is reported at its event's sequence number."""
    import base64

    from vault.storage.audit_tables import audit_checkpoints

    await _sealed(vault, 12)
    async with vault.engine.connect() as conn:
        cp = (await conn.execute(select(audit_checkpoints))).first()
    assert cp is not None
    wrong = "f" * 64
    message = checkpoints._checkpoint_message(cp.chain_pos, cp.seq, wrong, cp.at)
    signature = base64.b64encode(checkpoints._signing_key(vault).sign(message)).decode()
    await _tamper(
        vault,
        update(audit_checkpoints)
        .where(audit_checkpoints.c.chain_pos == cp.chain_pos)
        .values(head=wrong, signature=signature),
    )
    report = await audit_verify.verify_chain(vault, page=5)
    assert not report.ok and report.broken_seq == cp.seq
    assert "disagrees with the chain" in (report.problem or "")


def test_the_fast_canonical_encoding_is_the_chains_for_utc_rows() -> None:
    """The fast encoding of a row with an aware UTC timestamp (asyncpg's) gives the chain's
    exact bytes, with and without microseconds, also when a later value ends in `Z"`."""
    from datetime import UTC, datetime

    for at in (
        datetime(2026, 12, 4, 22, 39, 55, 120000, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    ):
        row = (
            7,
            at,
            None,
            "client",
            "shop",
            "lookup",
            None,
            "XYZ",
            'a"Z',
            "allow",
            None,
            None,
            "Z",
        )
        row += (1, "0" * 64)  # chain_pos and chain_mac follow the event's columns
        assert verify_pages.canonical_utc(row) == chain_links._canonical_values(list(row[:13]))


async def test_an_edit_that_keeps_the_fast_encoding_is_still_found(
    vault: VaultContext, parallel: int
) -> None:
    """An event whose timestamp was moved by a microsecond is named by its sequence number,
    in parallel ranges too."""
    await _sealed(vault, 9)
    seq = await _seq_at(vault, 6)
    async with vault.engine.connect() as conn:
        at = (
            await conn.execute(select(audit_events.c.at).where(audit_events.c.seq == seq))
        ).scalar_one()
    await _tamper(
        vault,
        update(audit_events)
        .where(audit_events.c.seq == seq)
        .values(at=at + timedelta(microseconds=1)),
    )
    for workers in (1, parallel):
        report = await audit_verify.verify_chain(vault, workers=workers, page=4)
        assert not report.ok and report.broken_seq == seq
