"""The sealed audit chain: sealing, checkpoints, and tamper detection on both databases."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy import table as table_clause

from tests.support.factories import WRITER, person
from vault.audit import chain as audit_chain
from vault.audit import chain_head, chain_links, checkpoint_file, checkpoints
from vault.audit import verify as audit_verify
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.context import VaultContext
from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals
from vault.subjects.store import create_subject

NOW = timedelta(0)


async def _events(vault, n: int) -> None:
    for i in range(n):
        async with vault.transaction() as conn:
            await record(
                conn,
                at=vault.clock.now(),
                actor=Actor("client", "shop", f"req-{i}"),
                action=AuditAction.LOOKUP,
                decision=Decision.ALLOW if i % 3 else Decision.DENY,
                subject_id="0f0e0d0c-0b0a-4908-8706-050403020100",
                purpose="order.delivery",
                fields=["name", "postal_address"],
                reason=None if i % 3 else "no_consent",
            )


async def _sealed(vault, n: int = 20) -> None:
    await _events(vault, n)
    await audit_chain.seal_all(vault, grace=NOW)


async def test_sealing_chains_every_event_and_verify_passes(vault):
    """All events get consecutive positions, a signed checkpoint covers the head, verify is
    clean."""
    await create_subject(vault, WRITER, person(1))
    await _sealed(vault, 30)
    report = await audit_verify.verify_chain(vault)
    assert report.ok, report.problem
    assert report.verified == 31 and report.unsealed == 0
    assert report.checkpoints >= 1 and report.last_checkpoint_position == 31


async def test_verify_counts_unsealed_events(vault):
    """Events appended after the last seal are reported as not sealed yet, not as broken."""
    await _sealed(vault, 5)
    await _events(vault, 3)
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.verified == 5 and report.unsealed == 3


async def test_sealing_is_incremental(vault):
    """A second seal continues the chain where the first stopped."""
    await _sealed(vault, 5)
    await _sealed(vault, 7)
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.verified == 12


async def _seq_at(vault, position: int) -> int:
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(select(audit_seals.c.seq).where(audit_seals.c.chain_pos == position))
        ).scalar_one()


async def _tamper(vault, stmt) -> None:
    async with vault.engine.begin() as conn:
        await conn.execute(stmt)


async def test_an_edited_event_is_caught_at_its_sequence_number(vault):
    """Changing one column of a sealed event breaks verification at exactly that event."""
    await _sealed(vault)
    seq = await _seq_at(vault, 7)
    await _tamper(
        vault, update(audit_events).where(audit_events.c.seq == seq).values(purpose="offers.phone")
    )
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and report.broken_seq == seq


async def test_a_deleted_event_is_caught_at_the_next_sequence_number(vault):
    """Deleting a sealed event leaves a hole in the positions, named by the event after it."""
    await _sealed(vault)
    seq = await _seq_at(vault, 9)
    after = await _seq_at(vault, 10)
    await _tamper(vault, delete(audit_events).where(audit_events.c.seq == seq))
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and report.broken_seq == after and "missing" in report.problem


async def test_reordered_events_are_caught(vault):
    """Swapping the contents of two sealed events (keeping their seals) breaks the chain."""
    await _sealed(vault)
    a, b = await _seq_at(vault, 4), await _seq_at(vault, 5)
    await _tamper(
        vault,
        update(audit_events)
        .where(audit_events.c.seq == a)
        .values(request_id="swap-b", decision="deny"),
    )
    await _tamper(
        vault, update(audit_events).where(audit_events.c.seq == b).values(request_id="req-3")
    )
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and report.broken_seq == a


async def test_an_event_inserted_behind_the_chain_is_caught(vault):
    """A forged row with a sequence number inside the sealed range is reported as inserted."""
    await _events(vault, 5)
    await _tamper(vault, delete(audit_events).where(audit_events.c.seq == 3))
    await audit_chain.seal_all(vault, grace=NOW)
    report = await audit_verify.verify_chain(vault)
    assert report.ok
    await _tamper(
        vault,
        insert(audit_events).values(
            seq=3,
            at=vault.clock.now(),
            actor_type="client",
            actor_id="forger",
            action=str(AuditAction.LOOKUP),
            decision="allow",
        ),
    )
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and report.broken_seq == 3 and "inserted" in report.problem


async def test_a_forged_sealed_row_in_the_middle_is_caught(vault):
    """Shifting positions to slip a row into the chain fails without the audit key."""
    await _sealed(vault, 10)
    seq5 = await _seq_at(vault, 5)
    await _tamper(
        vault, update(audit_seals).where(audit_seals.c.chain_pos == 5).values(chain_mac="f" * 64)
    )
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and report.broken_seq == seq5


async def test_a_deleted_seal_is_caught_at_its_event(vault):
    """Removing one event's seal (to edit the event unseen) leaves a hole in the positions,
    named by the next sealed event."""
    await _sealed(vault, 10)
    after = await _seq_at(vault, 6)
    await _tamper(vault, delete(audit_seals).where(audit_seals.c.chain_pos == 5))
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and report.broken_seq == after and "missing" in report.problem


async def test_sealing_appends_seals_and_leaves_the_events_as_written(vault):
    """The sealer writes one seal row per event and never rewrites an event: the events'
    columns are byte for byte what the request appended."""
    await _events(vault, 6)
    async with vault.engine.connect() as conn:
        before = (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()
    await audit_chain.seal_all(vault, grace=NOW)
    async with vault.engine.connect() as conn:
        after = (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()
        seals = (await conn.execute(select(audit_seals).order_by(audit_seals.c.seq))).all()
    assert after == before
    assert [(s.seq, s.chain_pos) for s in seals] == [(e.seq, i) for i, e in enumerate(before, 1)]


async def test_a_truncated_tail_behind_a_checkpoint_is_caught(vault):
    """Deleting the newest sealed events under a signed checkpoint is reported as truncation."""
    await _sealed(vault, 12)
    last_seq = await _seq_at(vault, 12)
    await _tamper(
        vault,
        delete(audit_events).where(
            audit_events.c.seq.in_(select(audit_seals.c.seq).where(audit_seals.c.chain_pos >= 10))
        ),
    )
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and report.broken_seq == last_seq and "truncated" in report.problem


async def test_a_forged_checkpoint_signature_is_caught(vault):
    """A checkpoint whose head was changed no longer matches its Ed25519 signature."""
    await _sealed(vault, 4)
    await _tamper(vault, update(audit_checkpoints).values(head="0" * 64))
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and "signature" in report.problem


async def test_a_young_gap_holds_sealing_back_until_grace_passes(vault, clock):
    """A missing sequence number younger than the grace period stops sealing; later it is
    skipped."""
    await _events(vault, 6)
    await _tamper(vault, delete(audit_events).where(audit_events.c.seq == 4))
    report = await audit_chain.seal_pending(vault, grace=timedelta(seconds=10))
    assert report.sealed == 3 and report.waiting_for_gap
    clock.advance(timedelta(seconds=11))
    report = await audit_chain.seal_pending(vault, grace=timedelta(seconds=10))
    assert report.sealed == 2 and not report.waiting_for_gap
    assert (await audit_verify.verify_chain(vault)).ok


@pytest.mark.parametrize("n", [0])
async def test_verify_of_an_empty_trail_passes(vault, n):
    """An empty trail verifies with zero events."""
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.verified == n


_JSON_REFERENCE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
        ),
        max_size=14,
    )
)
def test_canonical_encoding_matches_the_encoding_existing_chains_were_sealed_with(values):
    """The MAC input is byte for byte what the original `json` encoder wrote, so chains sealed
    before the switch to msgspec still verify."""
    padded = values + [None] * len(chain_links.EVENT_COLUMNS)
    row = dict(zip(chain_links.EVENT_COLUMNS, padded, strict=False))  # padded is longer
    expected = _JSON_REFERENCE.encode([row[c] for c in chain_links.EVENT_COLUMNS]).encode()
    assert chain_links.canonical_event(row) == expected


async def test_the_sealer_reads_its_batch_along_the_primary_key_on_postgresql(vault):
    """In the steady state (nearly everything sealed, fresh statistics, a short unsealed
    tail) fetching the tail is an index range scan from the head, not a scan and sort of
    the whole table, which a filter on `chain_pos` made it (70 ms a round at 240,000
    events, every 0.2 s)."""
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner question")
    row = {
        "at": vault.clock.now(),
        "actor_type": "client",
        "actor_id": "shop",
        "action": "client:contact:lookup",
        "decision": "allow",
    }
    async with vault.transaction() as conn:
        await conn.execute(insert(audit_events), [row] * 40_000)
    for _ in range(8):
        await audit_chain.seal_pending(vault, grace=NOW, batch=4_900)
    async with vault.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("ANALYZE audit_events")
        head = (await conn.execute(chain_head.HEAD)).first()
        plan = "\n".join(
            r[0]
            for r in await conn.exec_driver_sql(
                "EXPLAIN " + audit_chain._UNSEALED_PG.sql,
                tuple(audit_chain._UNSEALED_PG.args({"last_seq": head.seq, "batch": 5000})),
            )
        )
        # Partitioned by month (migration 0030), the months without events are empty
        # tables, which the planner rightly scans (no pages to read); no partition that
        # holds events may be scanned whole.
        scanned = re.findall(r"Seq Scan on (\w+)", plan)
        for name in scanned:
            rows = await conn.execute(select(func.count()).select_from(table_clause(name)))
            assert rows.scalar_one() == 0, plan
    assert head.chain_pos == 39_200
    assert "Index Cond: (seq > " in plan, plan
    assert (await audit_chain.seal_pending(vault, grace=NOW)).sealed == 800


async def test_a_sealer_whose_remembered_head_was_overtaken_continues_from_the_real_head(
    vault, settings
):
    """Two processes take turns sealing one database: each continues from the head the
    other wrote, and the chain stays one line without a fork."""
    other = VaultContext.open(settings, clock=vault.clock)
    try:
        await _events(vault, 4)
        assert (await audit_chain.seal_pending(vault, grace=NOW)).head_position == 4
        await _events(vault, 3)
        assert (await audit_chain.seal_pending(other, grace=NOW)).head_position == 7
        await _events(vault, 2)
        assert (await audit_chain.seal_pending(vault, grace=NOW)).head_position == 9
    finally:
        await other.close()
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.verified == 9, report


async def test_a_sealing_round_that_rolled_back_is_not_remembered_as_the_head(vault, monkeypatch):
    """If the round's transaction fails after the MACs were computed, the next round starts
    from the head in the database, not from the one the failed round would have written."""
    await _events(vault, 3)
    await audit_chain.seal_pending(vault, grace=NOW)
    await _events(vault, 3)

    async def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit_chain, "_maybe_checkpoint", broken)
    with pytest.raises(RuntimeError):
        await audit_chain.seal_pending(vault, grace=NOW)
    monkeypatch.undo()
    assert (await audit_chain.seal_pending(vault, grace=NOW)).head_position == 6
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.verified == 6 and report.unsealed == 0, report


async def _truncate_after(vault, position: int) -> None:
    """What a database writer can do: delete the newest events, their seals and the
    checkpoints that cover them, leaving an older checkpoint as the apparent head."""
    newer = select(audit_seals.c.seq).where(audit_seals.c.chain_pos > position)
    await _tamper(vault, delete(audit_events).where(audit_events.c.seq.in_(newer)))
    await _tamper(vault, delete(audit_seals).where(audit_seals.c.chain_pos > position))
    await _tamper(vault, delete(audit_checkpoints).where(audit_checkpoints.c.chain_pos > position))


async def test_truncation_after_the_last_checkpoint_in_the_database_is_caught(vault):
    """Deleting the newest events, their seals and their checkpoint rows passes every check
    inside the database, but the signed checkpoint in the file outside it still names the
    old head: verify fails at that position."""
    await _sealed(vault, 5)
    await _sealed(vault, 4)
    newest_seq = await _seq_at(vault, 9)
    await _truncate_after(vault, 5)
    report = await audit_verify.verify_chain(vault)
    assert not report.ok, report
    assert report.broken_seq == newest_seq
    assert "position 9" in report.problem and "truncated" in report.problem, report.problem


async def test_a_rewritten_trail_resealed_by_the_sealer_is_caught(vault):
    """A database writer replaces the whole trail with fresh events, more than before, and
    the honest sealer chains them: every check inside the database passes, but the chain
    disagrees with the checkpoint file, and the sealer appends nothing that would agree."""
    await _sealed(vault, 6)
    path = vault.settings.audit_checkpoint_path
    before = path.read_bytes()
    old_head = checkpoint_file.last_checkpoint_line(path)
    for table in (audit_checkpoints, audit_seals, audit_events):
        await _tamper(vault, delete(table))
    for i in range(10):
        async with vault.transaction() as conn:
            await record(
                conn,
                at=vault.clock.now(),
                actor=Actor("client", "forger", f"f-{i}"),
                action=AuditAction.LOOKUP,
                decision=Decision.DENY,
                reason="no_consent",
            )
    await audit_chain.seal_all(vault, grace=NOW)
    assert path.read_bytes() == before
    report = await audit_verify.verify_chain(vault)
    assert not report.ok
    assert f"position {old_head.chain_pos} differs" in report.problem, report.problem


async def test_the_checkpoint_file_holds_signed_lines_only_its_owner_reads(vault):
    """Each checkpoint is one JSON line of ids and digests in a file of mode 0600, signed
    with the key auditors hold, and the newest names the chain head."""
    await _sealed(vault, 3)
    await _sealed(vault, 2)
    path = vault.settings.audit_checkpoint_path
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    assert set(json.loads(lines[-1])) == {
        "v",
        "chain_pos",
        "seq",
        "head",
        "at",
        "key_id",
        "signature",
    }
    newest = checkpoints.Checkpoint.parse(lines[-1])
    public = checkpoints._signing_key(vault).verify_key
    assert newest.chain_pos == 5 and newest.signed_by(public)
    report = await audit_verify.verify_chain(vault)
    assert report.ok and report.checkpoint_file.newest == newest


async def test_a_forged_line_in_the_checkpoint_file_is_caught(vault):
    """A newest line whose signature does not verify (or a line that is no checkpoint at
    all) fails verification instead of being trusted or skipped."""
    await _sealed(vault, 3)
    path = vault.settings.audit_checkpoint_path
    good = checkpoints.Checkpoint.parse(path.read_bytes().splitlines()[-1])
    forged = checkpoints.Checkpoint(
        good.chain_pos + 5, good.seq + 5, "f" * 64, good.at, good.key_id, good.signature
    )
    with path.open("ab") as f:
        f.write(forged.line())
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and "bad signature" in report.problem
    path.write_bytes(good.line() + b"not json\n")
    report = await audit_verify.verify_chain(vault)
    assert not report.ok and "line 2" in report.problem


async def test_without_a_checkpoint_file_verify_reports_it_and_passes(vault, tmp_path):
    """A missing file (a node that never sealed, or a file kept elsewhere) is not a broken
    chain; the report says nothing outside the database was compared."""
    await _sealed(vault, 3)
    report = await audit_verify.verify_chain(vault, checkpoint_file=tmp_path / "none.jsonl")
    assert report.ok and not report.checkpoint_file.exists


async def test_a_quiet_head_is_checkpointed_within_the_interval(vault, clock):
    """Events sealed shortly after a checkpoint, with nothing following them, are covered by
    a checkpoint in the file once the interval has passed: the sealer does not wait for
    the next event."""
    sealer = audit_chain.Sealer(vault)
    await _events(vault, 3)
    assert (await sealer.round()).checkpoint == 3
    clock.advance(timedelta(seconds=4))
    await _events(vault, 2)
    report = await sealer.round()
    assert report.sealed == 2 and report.checkpoint is None
    path = vault.settings.audit_checkpoint_path
    clock.advance(timedelta(seconds=5))
    await sealer.round()
    assert checkpoint_file.last_checkpoint_line(path).chain_pos == 3
    clock.advance(timedelta(seconds=6))
    await sealer.round()
    assert checkpoint_file.last_checkpoint_line(path).chain_pos == 5


async def test_events_keep_arriving_checkpoints_follow_every_interval(vault, clock):
    """While events arrive on every round, a checkpoint is written as soon as the interval
    has passed since the last one, not only every thousand events."""
    await _events(vault, 1)
    await audit_chain.seal_pending(vault, grace=NOW)
    written = []
    for _ in range(25):
        clock.advance(timedelta(seconds=1))
        await _events(vault, 1)
        report = await audit_chain.seal_pending(vault, grace=NOW)
        written += [report.checkpoint] if report.checkpoint else []
    assert written == [11, 21]


async def test_a_round_that_rolled_back_appends_nothing_to_the_file(vault, monkeypatch):
    """The file receives a checkpoint only after its transaction committed: a round that
    fails after signing leaves the file as it was."""
    await _sealed(vault, 2)
    path = vault.settings.audit_checkpoint_path
    before = path.read_bytes()
    await _events(vault, 2)
    real = audit_chain._maybe_checkpoint

    async def sign_then_fail(*args, **kwargs):
        await real(*args, **{**kwargs, "force": True})
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit_chain, "_maybe_checkpoint", sign_then_fail)
    with pytest.raises(RuntimeError):
        await audit_chain.seal_pending(vault, grace=NOW)
    assert path.read_bytes() == before


def _file_positions(vault) -> list[int]:
    lines = vault.settings.audit_checkpoint_path.read_bytes().splitlines()
    return [checkpoints.Checkpoint.parse(line).chain_pos for line in lines]


async def test_a_burst_anchors_once_per_interval_and_its_head_when_it_ends(vault, clock):
    """Under load the database gets a checkpoint every `checkpoint_every` events, the file
    at most one line per interval (one fsync, not one per thousand events); when the burst
    is over, the sealer anchors the head in the file within the interval."""
    sealer = audit_chain.Sealer(vault)
    await _events(vault, 12)
    written = []
    for _ in range(6):
        report = await audit_chain.seal_pending(vault, grace=NOW, batch=2, checkpoint_every=2)
        written.append(report.checkpoint)
    assert written == [2, 4, 6, 8, 10, 12]
    assert _file_positions(vault) == [2]
    clock.advance(timedelta(seconds=11))
    await sealer.round()
    assert _file_positions(vault) == [2, 12]
    assert (await audit_verify.verify_chain(vault)).ok
