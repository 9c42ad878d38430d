"""The retention sweep's batched erasure (`erase_many_in`) has exactly the effects of
erasing the same subjects one by one with `erase_in`, row for row in every table; it fails
closed; and it sends the same number of statements whatever the size of the batch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select

from tests.support.dsar import contract, invoice, new_subject, newsletter, subject_row
from tests.support.factories import WRITER
from vault.bases.consents import Evidence, withdraw
from vault.context import VaultContext
from vault.outreach import preference_changes
from vault.rights import retention
from vault.rights.erasure import erase_in, read_retained
from vault.rights.erasure_batch import erase_many_in
from vault.rights.retention import run_retention
from vault.rights.retention_plan import erasure_plan
from vault.storage.campaign_tables import campaign_audience, campaign_bookings
from vault.storage.mail_tables import mail_outbox
from vault.storage.outreach_tables import contact_budgets
from vault.storage.recipient_tables import domain_events
from vault.storage.rights_tables import identity_changes, self_service_challenges, web_sessions
from vault.storage.tables import consents, metadata, subjects

DAY = timedelta(days=1)
PREFS = Evidence("hotline.inbound", "recorded_call", "prefs-2026-11", "de")
#: Columns whose values are drawn at random on every insert (and every integer key, drawn
#: from a sequence, see `_snapshot`).
RANDOM = {
    ("domain_events", "id"),
    ("retained_fields", "id"),
    ("retained_fields", "wrapped_key"),
    ("retained_fields", "fields_ct"),
}


async def _side_rows(vault: VaultContext, sid: str, n: int, now: Any) -> None:
    """Rows of every other table an erasure touches, written raw: bookings held and used
    with their budget, an audience entry, a live and an ended session, challenges by id and
    by the address's digest, an identity change and a queued mail."""
    row = await subject_row(vault, sid)
    month = now.strftime("%Y-%m")
    async with vault.transaction() as conn:
        for status, points in (("booked", 10 + n), ("used", 5)):
            await conn.execute(
                insert(campaign_bookings).values(
                    campaign_id=f"camp-{status}",
                    subject_id=sid,
                    month=month,
                    points_tenths=points,
                    order_key=n,
                    status=status,
                )
            )
        await conn.execute(
            insert(contact_budgets).values(
                subject_id=sid, month=month, used_tenths=5, booked_tenths=30, updated_at=now
            )
        )
        await conn.execute(insert(campaign_audience).values(campaign_id="camp-a", subject_id=sid))
        for i, ended in enumerate((None, now - DAY)):
            await conn.execute(
                insert(web_sessions).values(
                    token_hash=f"{n:02d}{i}".ljust(64, "0"),
                    kind="subject",
                    subject_id=sid,
                    created_at=now - DAY,
                    last_seen_at=now,
                    expires_at=now + DAY,
                    ended_at=ended,
                )
            )
        for i, digest in enumerate(("f" * 64, row.email_bidx)):
            await conn.execute(
                insert(self_service_challenges).values(
                    id=f"chal-{n}-{i}",
                    identifier_digest=digest,
                    subject_id=sid if i == 0 else None,
                    created_at=now,
                    expires_at=now + DAY,
                )
            )
        await conn.execute(
            insert(identity_changes).values(
                id=f"idc-{n}",
                subject_id=sid,
                ordinal=1,
                kind="email",
                changed_at=now,
                changed_by="tester",
                cooling_off_until=now + DAY,
                status="pending",
            )
        )
        await conn.execute(
            insert(mail_outbox).values(
                id=f"mail-{n}",
                kind="notice",
                language="de",
                status="pending",
                subject_id=sid,
                created_at=now,
                next_attempt_at=now,
                give_up_at=now + DAY,
            )
        )


async def _due_subjects(vault: VaultContext, clock: Any) -> list[str]:
    """Six subjects due for erasure, with preferences, retained invoice fields, a second
    ended basis, and rows in every other table an erasure touches (some without)."""
    sids = []
    for n in range(6):
        sid, _ = await new_subject(vault, 60 + n)
        deal = await contract(vault, sid)
        if n % 2 == 0:
            news = await newsletter(vault, sid)
            await withdraw(vault, WRITER, sid, news.id)
            raw = {"timezone": "Europe/Berlin", "monthly_cap_points": 3 + n}
            for prefs in (raw, {**raw, "monthly_cap_points": 2}):
                await preference_changes.set_preferences(
                    vault, WRITER, sid, prefs, source="client", evidence=PREFS
                )
        if n % 3 == 0:
            bill = await invoice(vault, sid)
            await withdraw(vault, WRITER, sid, bill.id)
        if n != 5:
            await _side_rows(vault, sid, n, clock.now())
        await withdraw(vault, WRITER, sid, deal.id)
        sids.append(sid)
    clock.advance(91 * DAY)
    return sids


async def _snapshot(vault: VaultContext, conn: Any, sids: list[str]) -> dict[str, Any]:
    """Every table's rows (columns drawn at random left out) as sorted tuples, and the
    retained fields decrypted."""
    out: dict[str, Any] = {}
    for table in metadata.sorted_tables:
        names = [
            c.name
            for c in table.columns
            if (table.name, c.name) not in RANDOM
            and not (c.primary_key and c.type.python_type is int)
        ]
        found = (await conn.execute(select(*[table.c[n] for n in names]))).all()
        out[table.name] = sorted((tuple(map(repr, r)) for r in found), key=repr)
    for sid in sids:
        out[f"retained:{sid}"] = await read_retained(vault, conn, sid)
    return out


async def _erase(
    vault: VaultContext, sids: list[str], batched: bool, *, due: bool = True
) -> dict[str, Any]:
    """Erase `sids` (locked, as the sweep does) one by one or batched, snapshot, roll back;
    `due=False` erases subjects the sweep would not (live bases), keeping nothing."""
    now = vault.clock.now()
    async with vault.engine.connect() as conn:
        await conn.begin()
        rows = (
            await conn.execute(select(subjects).where(subjects.c.id.in_(sids)).with_for_update())
        ).all()
        rows.sort(key=lambda r: sids.index(r.id))
        keeps = []
        for row in rows:
            bases = (
                await conn.execute(select(consents).where(consents.c.subject_id == row.id))
            ).all()
            verdict, keep = erasure_plan(vault, list(bases), now)
            assert (verdict == "erase") is due
            keeps.append(keep if due else [])
        if batched:
            await erase_many_in(vault, conn, WRITER, rows, now, keeps)
        else:
            for row, keep in zip(rows, keeps, strict=True):
                await erase_in(vault, conn, WRITER, row, now, keep=keep)
        snapshot = await _snapshot(vault, conn, sids)
        await conn.rollback()
    return snapshot


async def test_batched_erasure_changes_every_table_exactly_as_one_by_one(vault, clock):
    """Erasing six varied subjects in one batch leaves every table (ids and ciphertexts
    drawn at random aside) row for row as erasing them one at a time does."""
    sids = await _due_subjects(vault, clock)
    async with vault.engine.connect() as conn:
        before = await _snapshot(vault, conn, sids)
    one_by_one = await _erase(vault, sids, batched=False)
    batched = await _erase(vault, sids, batched=True)
    changed = {t for t in before if before[t] != one_by_one[t]}
    assert {"subjects", "audit_events", "domain_events", "contact_budgets"} <= changed
    assert any(r["fields"] for s in sids for r in one_by_one[f"retained:{s}"])
    for table in sorted(before):
        assert batched[table] == one_by_one[table], table


async def test_live_bases_end_in_a_batch_exactly_as_one_by_one(vault, clock):
    """Subjects whose bases are still live (a writer raced the sweep's decision) get the
    same ended bases, history and events batched as one by one."""
    sids = []
    for n in range(3):
        sid, _ = await new_subject(vault, 70 + n)
        await contract(vault, sid)
        if n != 1:
            await newsletter(vault, sid)
        sids.append(sid)
    one_by_one = await _erase(vault, sids, batched=False, due=False)
    batched = await _erase(vault, sids, batched=True, due=False)
    assert any("'ended'" in str(r) for r in one_by_one["consent_history"])
    for table in sorted(one_by_one):
        assert batched[table] == one_by_one[table], table


async def test_a_failing_audit_write_erases_none_of_the_batch(vault, clock, monkeypatch):
    """If the batch's audit events cannot be written, the sweep fails and no subject of the
    batch is erased, no event emitted (fail closed)."""
    sids = await _due_subjects(vault, clock)

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("audit trail down")

    monkeypatch.setattr("vault.rights.erasure_batch.audit.record_records", broken)
    with pytest.raises(RuntimeError):
        await run_retention(vault)
    assert {(await subject_row(vault, s)).status for s in sids} == {"active"}
    async with vault.engine.connect() as conn:
        erased = (
            await conn.execute(
                select(domain_events.c.id).where(domain_events.c.type == "subject.erased")
            )
        ).all()
    assert erased == []
    monkeypatch.undo()
    assert (await run_retention(vault)).erased == 6


async def test_a_batch_sends_the_same_statements_for_one_or_six_erasures(vault, clock):
    """The sweep sends as many statements to erase six subjects (one batch) as to erase one:
    the count does not grow with the subjects erased."""

    async def sweep_statements(seeds: range) -> int:
        for seed in seeds:
            sid, _ = await new_subject(vault, seed)
            deal = await contract(vault, sid)
            await withdraw(vault, WRITER, sid, deal.id)
        clock.advance(91 * DAY)
        sent: list[str] = []

        def capture(*args: Any) -> None:
            sent.append(args[2])

        event.listen(vault.engine.sync_engine, "before_cursor_execute", capture)
        try:
            report = await run_retention(vault)
        finally:
            event.remove(vault.engine.sync_engine, "before_cursor_execute", capture)
        assert report.erased == len(seeds)
        return len(sent)

    assert retention.ERASE_BATCH >= 6
    one = await sweep_statements(range(80, 81))
    assert await sweep_statements(range(90, 96)) == one


async def test_a_listed_batch_is_erased_in_transactions_of_erase_batch(vault, clock, monkeypatch):
    """With fewer subjects per erasure transaction than per listing, every due subject is
    still erased, once."""
    monkeypatch.setattr(retention, "ERASE_BATCH", 2)
    sids = []
    for seed in range(100, 105):
        sid, _ = await new_subject(vault, seed)
        await withdraw(vault, WRITER, sid, (await contract(vault, sid)).id)
        sids.append(sid)
    clock.advance(91 * DAY)
    assert (await run_retention(vault)).erased == 5
    assert {(await subject_row(vault, s)).status for s in sids} == {"erased"}
    assert (await run_retention(vault)).erased == 0
