"""A range checked chunk by chunk: the fast CSV walk and the exact check of typed rows
together are exact for every event and tamper-evident (both databases; the streamed path
on PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, update

from vault.audit import chain as audit_chain
from vault.audit import verify as audit_verify
from vault.audit import verify_stream
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.audit.verify_csv import CsvWalk
from vault.audit.verify_exact import check_exact
from vault.audit.verify_sql import statements
from vault.audit.verify_state import ChainState, RangeJob
from vault.audit.verify_worker import WorkerFailed, run_ranges
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events, audit_seals
from vault.storage.pg_direct import asyncpg_dsn

#: Values JSON escapes, and values it leaves alone that COPY's text format escapes.
AWKWARD = 'quote " backslash \\ tab \t newline \n control \x01 \x1f DEL \x7f \u2028 é 😀 \\N'


async def _events(vault: VaultContext, details: list[Any]) -> None:
    for i, detail in enumerate(details):
        async with vault.transaction() as conn:
            await record(
                conn,
                at=vault.clock.now() + timedelta(microseconds=i * 10),
                actor=Actor("client", "shop", f"req-{i}"),
                action=AuditAction.LOOKUP,
                decision=Decision.ALLOW,
                subject_id="0f0e0d0c-0b0a-4908-8706-050403020100",
                purpose="order.delivery",
                fields=["name"],
                reason=AWKWARD if i % 3 == 0 else None,
                detail=detail,
            )
    await audit_chain.seal_all(vault, grace=timedelta(0))


async def _seq_at(vault: VaultContext, position: int) -> int:
    async with vault.engine.connect() as conn:
        found = select(audit_seals.c.seq).where(audit_seals.c.chain_pos == position)
        return int((await conn.execute(found)).scalar_one())


async def _set(vault: VaultContext, seq: int, **values: Any) -> None:
    async with vault.engine.begin() as conn:
        await conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(**values))


async def test_awkward_values_verify_and_an_edit_among_them_is_named(vault: VaultContext) -> None:
    """Events with quotes, backslashes, tabs, newlines and control characters verify, in
    chunks of three; editing the detail of one of them is named by its sequence number."""
    await _events(vault, [{"note": AWKWARD, "n": i} if i % 2 else None for i in range(14)])
    clean = await audit_verify.verify_chain(vault, page=3)
    assert clean.ok, clean.problem
    assert clean.verified == 14
    seq = await _seq_at(vault, 10)
    await _set(vault, seq, detail='{"note": "changed"}')
    report = await audit_verify.verify_chain(vault, page=3)
    assert not report.ok and report.broken_seq == seq
    assert "does not match its seal" in (report.problem or "")
    assert report.verified == 9


async def test_a_control_character_slipped_into_a_plain_event_is_found(
    vault: VaultContext,
) -> None:
    """A control character added to an event that had none (so its line is rebuilt, with
    the character raw) does not match the seal: the exact check names the event."""
    await _events(vault, [None] * 8)
    seq = await _seq_at(vault, 5)
    await _set(vault, seq, purpose="order.delivery\x01")
    report = await audit_verify.verify_chain(vault, page=4)
    assert not report.ok and report.broken_seq == seq


@pytest.fixture
def postgres_only(vault: VaultContext) -> VaultContext:
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("worker processes stream from PostgreSQL only")
    return vault


async def test_a_worker_that_cannot_reach_the_database_fails_the_run(
    postgres_only: VaultContext,
) -> None:
    """A worker that ends without answering (here: a database that refuses it) fails the
    verification instead of leaving its range unchecked."""
    jobs = [RangeJob(0, 5, None), RangeJob(5, 10, None)]
    with pytest.raises(WorkerFailed):
        await run_ranges(
            "postgresql://nobody@127.0.0.1:1/none", b"k" * 32, statements(10), jobs, 2, print
        )


#: Values CSV and JSON escape alike (a quote, a backslash) or not at all: the fast walk
#: must accept them as they come out of PostgreSQL, without the exact check.
JSON_LIKE = ['{"by": "id", "note": "a \\"b\\" c"}', "back\\slash", "", "null", "a,b", "é 😀 \u2028"]


async def _json_like(vault: VaultContext, values: list[str]) -> None:
    """Sealed events with each value as actor, purpose and detail."""
    for i, value in enumerate(values):
        async with vault.transaction() as conn:
            await record(
                conn,
                at=vault.clock.now() + timedelta(microseconds=i * 110),
                actor=Actor("client", value, f"req-{i}"),
                action=AuditAction.LOOKUP,
                decision=Decision.ALLOW,
                subject_id=None,
                purpose=value,
                fields=["name"],
                detail=value,
            )
    await audit_chain.seal_all(vault, grace=timedelta(0))


async def test_quotes_backslashes_and_unicode_pass_the_fast_walk_alone(
    postgres_only: VaultContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events whose values hold quotes, backslashes, commas, an empty string, the word null
    or non-ASCII letters (a lookup's JSON detail) are accepted from PostgreSQL's CSV lines
    as they stream: the exact check is never needed."""
    vault = postgres_only
    await _json_like(vault, JSON_LIKE * 2)

    async def no_exact_check(*args: Any) -> None:
        raise AssertionError("the fast walk handed events to the exact check")

    monkeypatch.setattr(verify_stream, "check_exact", no_exact_check)
    report = await audit_verify.verify_chain(vault, page=4)
    assert report.ok, report.problem
    assert report.verified == len(JSON_LIKE) * 2


async def test_a_second_row_under_a_sealed_sequence_number_is_found(
    postgres_only: VaultContext,
) -> None:
    """A row copied under the sequence number of a sealed event (the partitioned table's
    key is `(seq, at)`, so another time stamp makes it new) joins that event's seal; the
    walk names the sequence number, also when it is a chunk's last."""
    vault = postgres_only
    await _events(vault, [None] * 8)
    for position, page in ((4, 3), (6, 3)):
        seq = await _seq_at(vault, position)
        async with vault.engine.begin() as conn:
            row = (await conn.execute(select(audit_events).where(audit_events.c.seq == seq))).one()
            copy = {**row._asdict(), "at": row.at + timedelta(seconds=1), "actor_id": "forger"}
            await conn.execute(audit_events.insert().values(**copy))
        report = await audit_verify.verify_chain(vault, page=page)
        assert not report.ok and report.broken_seq == seq, report.problem
        async with vault.engine.begin() as conn:
            await conn.execute(audit_events.delete().where(audit_events.c.actor_id == "forger"))


async def test_the_exact_check_starts_at_the_last_event_the_walk_accepted(
    postgres_only: VaultContext,
) -> None:
    """When the stream splits right after an event the fast walk accepted and a second row
    under its sequence number opens the next piece, the exact check reads that number again
    and names it (its position repeats) instead of starting after it."""
    vault = postgres_only
    await _json_like(vault, JSON_LIKE)
    seq = await _seq_at(vault, 4)
    async with vault.engine.begin() as conn:
        row = (await conn.execute(select(audit_events).where(audit_events.c.seq == seq))).one()
        copy = {**row._asdict(), "at": row.at + timedelta(seconds=1), "actor_id": "forger"}
        await conn.execute(audit_events.insert().values(**copy))
    sql, key = statements(100), vault.secrets.audit_key
    dsn = asyncpg_dsn(vault.engine.url.render_as_string(hide_password=False))
    conn = await asyncpg.connect(dsn, server_settings=verify_stream.SESSION)
    try:
        out: list[bytes] = []

        async def keep(data: bytes) -> None:
            out.append(bytes(data))

        await conn.copy_from_query(sql.copy.format(lo=0, hi=100), output=keep, **sql.csv_options())
        lines = b"".join(out).splitlines(keepends=True)
        cut = next(i for i, line in enumerate(lines) if line.split(b",")[2] == b"%d" % seq) + 1
        state = ChainState.at(None, None)
        walk = CsvWalk(key, state)
        walk.check(b"".join(lines[:cut]))
        assert not walk.failed and state.last_seq == seq
        walk.check(b"".join(lines[cut:]))
        assert walk.failed and state.last_seq == seq
        await check_exact(conn, sql, key, state, 100)
    finally:
        await conn.close()
    assert state.broken is not None and state.broken[0] == seq, state.broken
