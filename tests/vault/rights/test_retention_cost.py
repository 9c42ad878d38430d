"""The retention run costs O(subjects due), not O(subjects): every statement it sends about
subjects or their bases finds its rows through an index condition (or a partial index over
the few rows it is about), never by reading every row, on both databases; and it holds no
lock a lookup waits for."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.dsar import NEWS, contract, look, new_subject, newsletter, sms_offers
from tests.support.factories import WRITER
from vault.access.lookup import LookupDenied
from vault.bases.consents import record_basis, withdraw
from vault.context import VaultContext
from vault.rights import retention
from vault.rights.retention import run_retention

DAY = timedelta(days=1)
TABLES = ("subjects", "consents")
#: Partial indexes hold only the rows the statement is about (migration 0027).
PARTIAL = ("ix_subjects_legacy_revision", "ix_consents_legacy_texts")


@contextmanager
def statements(vault: VaultContext) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT, UPDATE and DELETE about subjects or bases sent inside the block."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        lowered = statement.lower()
        if lowered.lstrip().startswith(("select", "update", "delete")) and any(
            t in lowered for t in TABLES
        ):
            seen.append((statement, parameters))

    event.listen(vault.engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(vault.engine.sync_engine, "before_cursor_execute", capture)


def _full_reads_sqlite(plan: list[str]) -> list[str]:
    return [line for line in plan if re.match(rf"SCAN ({'|'.join(TABLES)})\b", line)]


def _full_reads_postgresql(plan: list[str]) -> list[str]:
    """Scan nodes on the tables without an index condition (with sequential scans off, a
    statement no index serves still reads every row, through a Seq Scan or a whole index)."""
    bad = []
    for i, line in enumerate(plan):
        node = re.search(r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan)", line)
        if node is None:
            continue
        if node.group(1) == "Seq Scan":
            if any(f" on {t} " in line + " " for t in TABLES):
                bad.append(line)
            continue
        if node.group(1) != "Bitmap Index Scan" and not any(
            f" on {t} " in line + " " for t in TABLES
        ):
            continue
        if any(name in line for name in PARTIAL):
            continue
        indent = len(line) - len(line.lstrip())
        details = []
        for below in plan[i + 1 :]:
            if len(below) - len(below.lstrip()) <= indent or below.strip().startswith("->"):
                break
            details.append(below)
        if not any("Index Cond" in d for d in details):
            bad.append(line)
    return bad


async def full_reads(vault: VaultContext, sent: list[tuple[str, Any]]) -> list[str]:
    """The statements whose plan reads a whole table (or a whole index) of subjects/bases."""
    postgres = vault.engine.dialect.name == "postgresql"
    out = []
    async with vault.engine.connect() as conn:
        if postgres:
            await conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in sent:
            if isinstance(parameters, list):  # executemany: every set has the same plan
                parameters = parameters[0]
            prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
            plan = [str(r[-1]) for r in rows]
            bad = _full_reads_postgresql(plan) if postgres else _full_reads_sqlite(plan)
            if bad:
                out.append(f"{statement}\n  {bad}")
        await conn.rollback()
    return out


async def test_no_statement_of_a_sweep_reads_every_subject_or_basis(vault, clock):
    """A sweep that expires, lapses, erases, waits, and finds a subject without a basis
    plans every statement about subjects and bases as an index range or lookup."""
    due, _ = await new_subject(vault, 1)
    deal = await contract(vault, due)
    await withdraw(vault, WRITER, due, deal.id)
    waiting, _ = await new_subject(vault, 2)
    news = await newsletter(vault, waiting)
    await withdraw(vault, WRITER, waiting, news.id)
    await contract(vault, waiting)
    expiring, _ = await new_subject(vault, 3)
    await sms_offers(vault, expiring)
    lapsing, _ = await new_subject(vault, 4)
    await record_basis(vault, WRITER, lapsing, "newsletter.email", evidence=NEWS)
    await new_subject(vault, 5)
    clock.advance(400 * DAY)
    with statements(vault) as sent:
        report = await run_retention(vault)
    assert report.expired == 1 and report.lapsed == 1 and report.erased == 3
    assert report.without_basis == 1
    assert len(sent) > 10
    assert await full_reads(vault, sent) == []


async def test_a_sweep_with_nothing_due_sends_the_same_statements_at_any_size(vault, clock):
    """Once settled, a sweep's statements about subjects and bases do not grow with the
    number of subjects: it reads no subject that nothing made due."""

    async def idle_sweep() -> int:
        await run_retention(vault)  # settles the subjects stored since the last run
        with statements(vault) as sent:
            assert await run_retention(vault) == type(await run_retention(vault))()
        return len(sent)

    for seed in range(10, 12):
        sid, _ = await new_subject(vault, seed)
        await contract(vault, sid)
    small = await idle_sweep()
    for seed in range(12, 22):
        sid, _ = await new_subject(vault, seed)
        await contract(vault, sid)
    assert await idle_sweep() == small


async def test_lookups_answer_while_an_erasure_of_the_sweep_is_uncommitted(
    vault, clock, monkeypatch
):
    """While the sweep holds its erasure of one subject open (row locked, audit event
    written, not committed), lookups of another subject and of that very subject answer at
    once from the committed state: the sweep holds no lock a lookup waits for. PostgreSQL
    only: SQLite has one writer by design, and a lookup's audit write queues behind any
    write transaction there."""
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises every writer (one write lock per database file)")
    due, _ = await new_subject(vault, 30)
    deal = await contract(vault, due)
    await withdraw(vault, WRITER, due, deal.id)
    other, _ = await new_subject(vault, 31)
    await contract(vault, other)
    clock.advance(91 * DAY)
    erasing, release = asyncio.Event(), asyncio.Event()
    real = retention.erase_many_in

    async def held_open(*args: Any, **kw: Any) -> Any:
        result = await real(*args, **kw)
        erasing.set()
        await release.wait()
        return result

    monkeypatch.setattr(retention, "erase_many_in", held_open)
    sweep = asyncio.create_task(run_retention(vault))
    try:
        await asyncio.wait_for(erasing.wait(), 30)
        found = await asyncio.wait_for(look(vault, "order.delivery", "subject_id", other), 5)
        assert found.fields
        with pytest.raises(LookupDenied):  # its contract has ended: denied, not waiting
            await asyncio.wait_for(look(vault, "order.delivery", "subject_id", due), 5)
    finally:
        release.set()
    assert (await sweep).erased == 1
