"""Monthly partitions of the audit trail: created ahead, race-safe, DEFAULT rows moved in,
one month dropped, and the chain verified across partitions (on SQLite: nothing to do)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import column, delete, func, select, text, update
from sqlalchemy import table as table_clause

from vault.audit import chain as audit_chain
from vault.audit import partitions
from vault.audit import verify as audit_verify
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events

SUBJECT = "0f0e0d0c-0b0a-4908-8706-050403020100"


def _postgres(vault: VaultContext) -> bool:
    return vault.engine.dialect.name == "postgresql"


async def _names(vault: VaultContext) -> set[str]:
    return {p.name for p in await partitions.months(vault)}


@pytest.fixture
async def pristine(vault: VaultContext) -> AsyncIterator[VaultContext]:
    """The vault; partitions a test creates are dropped afterwards, so the shared PostgreSQL
    database of the run keeps the layout the migration gave it."""
    before = await _names(vault)
    yield vault
    extra = await _names(vault) - before
    if extra:
        async with vault.engine.begin() as conn:
            for name in extra:
                await conn.execute(text(f"DROP TABLE {name}"))


async def _events(vault: VaultContext, clock: FrozenClock, *moments: datetime) -> list[int]:
    """One lookup event at each moment (the vault's clock set to it), then sealed; their seqs."""
    seqs = []
    for i, moment in enumerate(moments):
        clock.set(moment)
        async with vault.transaction() as conn:
            await record(
                conn,
                at=moment,
                actor=Actor("client", "shop", f"req-{i}"),
                action=AuditAction.LOOKUP,
                decision=Decision.ALLOW,
                subject_id=SUBJECT,
                purpose="order.delivery",
                fields=["email"],
            )
            seqs.append(
                int((await conn.execute(select(func.max(audit_events.c.seq)))).scalar_one())
            )
    await audit_chain.seal_all(vault, grace=timedelta(0))
    return seqs


async def _rows_in(vault: VaultContext, table: str) -> list[int]:
    async with vault.engine.connect() as conn:
        seq = column("seq")
        rows = await conn.execute(select(seq).select_from(table_clause(table)).order_by(seq))
        return list(rows.scalars())


def _at(year: int, month: int, day: int = 10) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=UTC)


async def test_ensure_ahead_creates_the_month_and_three_after_once(pristine: VaultContext):
    """`ensure_ahead` creates the partitions of the current month and the three after it,
    and a second call creates none (on SQLite there is nothing to create)."""
    now = _at(2031, 11, 20)
    created = await partitions.ensure_ahead(pristine, now)
    if not _postgres(pristine):
        assert created == [] and await partitions.months(pristine) == []
        return
    months = [date(2031, 11, 1), date(2031, 12, 1), date(2032, 1, 1), date(2032, 2, 1)]
    assert created == months
    assert await partitions.ensure_ahead(pristine, now) == []
    listed = {p.month: p for p in await partitions.months(pristine, exact=True)}
    assert all(listed[m].rows == 0 and not listed[m].estimated for m in months)
    assert listed[None].name == partitions.DEFAULT_PARTITION


async def test_two_nodes_racing_create_each_month_once(pristine: VaultContext, settings):
    """Two contexts (two nodes) calling `ensure_ahead` at the same moment both succeed and
    together create each missing month exactly once."""
    other = VaultContext.open(settings, clock=FrozenClock(_at(2033, 3)))
    try:
        now = _at(2033, 3, 1)
        first, second = await asyncio.gather(
            partitions.ensure_ahead(pristine, now), partitions.ensure_ahead(other, now)
        )
    finally:
        await other.close()
    if not _postgres(pristine):
        assert first == second == []
        return
    assert sorted(first + second) == [date(2033, m, 1) for m in (3, 4, 5, 6)]
    assert not set(first) & set(second)


async def test_an_event_in_a_month_without_partition_moves_in_when_it_is_created(
    pristine: VaultContext, clock: FrozenClock
):
    """An event whose month has no partition is stored in DEFAULT; `ensure_ahead` for that
    month moves it into the new partition (same seq) and the chain still verifies."""
    if not _postgres(pristine):
        pytest.skip("SQLite keeps one table")
    (seq,) = await _events(pristine, clock, _at(2034, 5))
    assert seq in await _rows_in(pristine, partitions.DEFAULT_PARTITION)
    created = await partitions.ensure_ahead(pristine, _at(2034, 4), months=0)
    # April was asked for, May has a row in DEFAULT: both get a partition.
    assert created == [date(2034, 4, 1), date(2034, 5, 1)]
    assert seq not in await _rows_in(pristine, partitions.DEFAULT_PARTITION)
    assert await _rows_in(pristine, "audit_events_y2034m05") == [seq]
    report = await audit_verify.verify_chain(pristine)
    assert report.ok and report.verified == 1, report


async def test_drop_month_drops_exactly_that_month(pristine: VaultContext, clock: FrozenClock):
    """`drop_month` removes one month's partition with its events and leaves every event of
    the months before and after it as it was; a second drop and SQLite answer False."""
    seqs = await _events(pristine, clock, _at(2030, 1), _at(2030, 2), _at(2030, 2), _at(2030, 3))
    await partitions.ensure_ahead(pristine, _at(2030, 1), months=2)
    clock.set(_at(2030, 5))
    with pytest.raises(ValueError):
        await partitions.drop_month(pristine, date(2030, 5, 1))
    dropped = await partitions.drop_month(pristine, date(2030, 2, 1))
    if not _postgres(pristine):
        assert dropped is False
        return
    assert dropped is True
    names = await _names(pristine)
    assert "audit_events_y2030m02" not in names
    assert {"audit_events_y2030m01", "audit_events_y2030m03"} <= names
    assert await _rows_in(pristine, "audit_events") == [seqs[0], seqs[3]]
    assert await _rows_in(pristine, "audit_events_y2030m01") == [seqs[0]]
    assert await _rows_in(pristine, "audit_events_y2030m03") == [seqs[3]]
    assert await partitions.drop_month(pristine, date(2030, 2, 1)) is False


@pytest.mark.parametrize("tamper", ["edit", "delete"])
async def test_tampering_in_an_older_partition_is_found_by_its_seq(
    pristine: VaultContext, clock: FrozenClock, tamper: str
):
    """An event edited in (or deleted from) a month's partition other than the current one
    makes `verify` fail at that event's seq (at the next one's for a deletion), where the
    untouched chain verified across the partitions before."""
    seqs = await _events(
        pristine, clock, _at(2035, 1, 3), _at(2035, 1, 20), _at(2035, 2, 7), _at(2035, 3, 1)
    )
    await partitions.ensure_ahead(pristine, _at(2035, 1), months=2)
    if _postgres(pristine):
        assert await _rows_in(pristine, "audit_events_y2035m01") == seqs[:2]
    clean = await audit_verify.verify_chain(pristine)
    assert clean.ok and clean.verified == 4, clean
    target = seqs[1]
    async with pristine.engine.begin() as conn:
        if tamper == "edit":
            await conn.execute(
                update(audit_events).where(audit_events.c.seq == target).values(purpose="x")
            )
        else:
            await conn.execute(delete(audit_events).where(audit_events.c.seq == target))
    report = await audit_verify.verify_chain(pristine)
    # An edited event is named itself; a deleted one by the event that follows the gap
    # (as verify reports deletions in one table).
    named = target if tamper == "edit" else seqs[2]
    assert not report.ok and report.broken_seq == named, report
