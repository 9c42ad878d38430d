"""The COPY-line check of the audit chain: exact for every event, tamper-evident for the
ones it rebuilds and for the ones it hands to the chain's own encoding (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from vault.audit import chain as audit_chain
from vault.audit import verify as audit_verify
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.audit.verify_sql import statements
from vault.audit.verify_stream import RangeJob, rebuild
from vault.audit.verify_worker import WorkerFailed, run_ranges
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events, audit_seals

#: Values JSON escapes, and values it leaves alone that COPY's text format escapes.
AWKWARD = 'quote " backslash \\ tab \t newline \n control \x01 \x1f DEL \x7f \u2028 é 😀 \\N'


def _copy_line(row: list[Any]) -> tuple[bytes, bytes, bytes]:
    """(seq, at, rest) as PostgreSQL's COPY text prints an event of plain values in UTC."""
    at: datetime = row[1]
    stamp = at.strftime("%Y-%m-%d %H:%M:%S")
    if at.microsecond:
        stamp += f".{at.microsecond:06d}".rstrip("0")
    rest = "\t".join("\\N" if v is None else str(v) for v in row[2:])
    return str(row[0]).encode(), (stamp + "+00").encode(), rest.encode()


def test_rebuilt_lines_are_the_chains_canonical_bytes() -> None:
    """For every microsecond shape PostgreSQL prints, NULLs and empty strings, the rebuilt
    MAC input is `previous|position|` and the chain's own canonical encoding, byte for byte."""
    for micro in (0, 1, 10, 120000, 305835, 999999, 100000):
        at = datetime(2026, 12, 5, 2, 18, 39, micro, tzinfo=UTC)
        row = [7, at, None, "client", "shop", "lookup", "", "order.delivery", "name", "allow"]
        row += [None, None, None]
        got = rebuild(b"f" * 64, b"12", *_copy_line(row))
        assert got == b"f" * 64 + b"|12|" + audit_chain._canonical_values(row)


def test_lines_it_cannot_rebuild_exactly_are_left_to_the_exact_check() -> None:
    """A quote or a backslash (COPY's escapes) in a value, or a timestamp of another shape,
    gives no rebuilt line: those events go to the chain's own encoding."""
    at = datetime(2026, 12, 5, tzinfo=UTC)
    for value in ('say "hi"', "back\\slash", "\\N"):
        seq, stamp, _ = _copy_line([1, at, None])
        rest = ("x\t" + value.replace("\\", "\\\\")).encode()
        assert rebuild(b"0" * 64, b"1", seq, stamp, rest) is None
    assert rebuild(b"0" * 64, b"1", b"1", b"2026-12-05 00:00:00+01", b"x") is None
    assert rebuild(b"0" * 64, b"1", b"1", b"12026-12-05 00:00:00+00", b"x") is None


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
