"""The retention sweeper on both databases: expiry, lapse, erasure after retention, what it
leaves alone, shredding of retained fields, idempotence, and `tresor retention run`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.support.dsar import (
    DPO,
    NEWS,
    actions,
    consent_rows,
    contract,
    invoice,
    new_subject,
    newsletter,
    retained_rows,
    rows,
    sms_offers,
    subject_row,
)
from tests.support.factories import WRITER, person
from vault.bases.consents import record_basis, withdraw
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.rights import requests as dsar
from vault.rights.restriction import restrict
from vault.rights.retention import RetentionReport, run_retention
from vault.storage.tables import consent_history
from vault.subjects.store import create_subject

DAY = timedelta(days=1)


async def test_consents_past_expiry_are_stored_as_expired(vault, clock):
    """A consent past `expires_at` becomes `expired` with history and an audit event."""
    sid, _ = await new_subject(vault, 1)
    sms = await sms_offers(vault, sid)  # 365 days
    await contract(vault, sid)
    clock.advance(365 * DAY - timedelta(seconds=1))
    assert (await run_retention(vault)).expired == 0
    clock.advance(timedelta(seconds=1))
    report = await run_retention(vault)
    assert report.expired == 1 and report.erased == 0
    statuses = {r.id: r.status for r in await consent_rows(vault, sid)}
    assert statuses[sms.id] == "expired"
    history = await rows(vault, consent_history, consent_history.c.consent_id == sms.id)
    assert history[-1].event == "expired" and history[-1].actor == "system:tresor"
    assert "system:consent:expire" in await actions(vault)


async def test_unconfirmed_double_opt_ins_lapse(vault, clock):
    """A double opt-in still pending after its deadline becomes `lapsed`; its link dies."""
    sid, _ = await new_subject(vault, 2)
    pending = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    await contract(vault, sid)
    clock.advance(72 * timedelta(hours=1))
    report = await run_retention(vault)
    assert report.lapsed == 1
    (row,) = [r for r in await consent_rows(vault, sid) if r.id == pending.id]
    assert row.status == "lapsed" and row.confirm_token_hash is None
    assert "system:consent:lapse" in await actions(vault)


async def test_subject_is_erased_once_every_basis_ended_longer_ago_than_its_retention(vault, clock):
    """Withdrawn newsletter (30 days) and ended contract (90 days): erased only after both
    retention periods have passed."""
    sid, _ = await new_subject(vault, 3)
    news = await newsletter(vault, sid)
    deal = await contract(vault, sid)
    await withdraw(vault, WRITER, sid, news.id)
    clock.advance(10 * DAY)
    await withdraw(vault, WRITER, sid, deal.id)
    clock.advance(89 * DAY)
    assert (await run_retention(vault)).erased == 0
    assert (await subject_row(vault, sid)).status == "active"
    clock.advance(DAY)
    report = await run_retention(vault)
    assert report.erased == 1 and report.erased_with_retained == 0
    row = await subject_row(vault, sid)
    assert row.status == "erased" and row.wrapped_dek is None and row.email_bidx is None
    assert "system:subject:erase" in await actions(vault)
    assert (await run_retention(vault)) == RetentionReport()


async def test_expired_consent_counts_from_its_expiry(vault, clock):
    """An expired consent's retention runs from `expires_at`: 365 + 30 days after the grant."""
    sid, _ = await new_subject(vault, 4)
    await sms_offers(vault, sid)
    clock.advance(395 * DAY - timedelta(minutes=1))
    report = await run_retention(vault)
    assert report.expired == 1 and report.erased == 0
    clock.advance(timedelta(minutes=1))
    assert (await run_retention(vault)).erased == 1


async def test_live_basis_keeps_the_subject(vault, clock):
    """A subject with any basis in force is never erased, however old the others are."""
    sid, _ = await new_subject(vault, 5)
    news = await newsletter(vault, sid)
    await withdraw(vault, WRITER, sid, news.id)
    await contract(vault, sid)
    clock.advance(400 * DAY)
    assert (await run_retention(vault)).erased == 0
    assert (await subject_row(vault, sid)).status == "active"


async def test_subjects_without_any_basis_are_left_alone_and_counted(vault, clock):
    """A subject with no basis at all is not erased by the sweeper; the report counts it."""
    sid, _ = await new_subject(vault, 6)
    clock.advance(1000 * DAY)
    report = await run_retention(vault)
    assert report.erased == 0 and report.without_basis == 1
    assert (await subject_row(vault, sid)).status == "active"


async def test_restricted_subjects_and_open_requests_are_skipped(vault, clock):
    """A restricted subject, or one with an open request, is due but left alone (skipped)."""
    restricted, _ = await new_subject(vault, 7)
    asking, _ = await new_subject(vault, 8)
    for sid in (restricted, asking):
        deal = await contract(vault, sid)
        await withdraw(vault, WRITER, sid, deal.id)
    await restrict(vault, DPO, restricted)
    request = await dsar.create_request(
        vault, DPO, subject_id=asking, type="access", channel="letter"
    )
    clock.advance(91 * DAY)
    report = await run_retention(vault)
    assert report.erased == 0 and report.skipped == 2
    await dsar.reject(vault, DPO, request.id, "identity could not be verified")
    report = await run_retention(vault)
    assert report.erased == 1 and report.skipped == 1
    assert (await subject_row(vault, asking)).status == "erased"
    assert (await subject_row(vault, restricted)).status == "restricted"


async def test_ended_invoice_basis_moves_to_retained_fields_and_the_rest_is_erased(vault, clock):
    """When only a legal-obligation retention still runs, everything else is erased now and
    the invoice fields are kept until the end of that basis plus ten years, then shredded."""
    sid, data = await new_subject(vault, 9)
    bill = await invoice(vault, sid)
    deal = await contract(vault, sid)
    await withdraw(vault, WRITER, sid, bill.id)
    ended_at = clock.now()
    await withdraw(vault, WRITER, sid, deal.id)
    clock.advance(90 * DAY)
    report = await run_retention(vault)
    assert report.erased == 1 and report.erased_with_retained == 1
    (kept,) = await retained_rows(vault, sid)
    assert kept.purpose == "invoice.postal"
    from vault.clock import as_utc

    assert as_utc(kept.retain_until) == ended_at + timedelta(days=3653)
    row = await subject_row(vault, sid)
    assert row.email_ct is None and row.phone_bidx is None
    clock.set(ended_at + timedelta(days=3653))
    assert (await run_retention(vault)).shredded == 1
    (kept,) = await retained_rows(vault, sid)
    assert kept.fields_ct is None and kept.wrapped_key is None


async def test_unknown_purpose_blocks_erasure(vault, clock):
    """A basis whose purpose left the catalogue has an unknown retention: no erasure."""
    from sqlalchemy import update

    from vault.storage.tables import consents

    sid, _ = await new_subject(vault, 10)
    deal = await contract(vault, sid)
    await withdraw(vault, WRITER, sid, deal.id)
    async with vault.engine.begin() as conn:
        await conn.execute(update(consents).values(purpose="retired.purpose"))
    clock.advance(5000 * DAY)
    report = await run_retention(vault)
    assert report.erased == 0 and report.skipped == 1


async def test_sweeper_works_in_small_batches(vault, clock):
    """Batches smaller than the work still process everything."""
    sids = []
    for seed in range(20, 25):
        sid, _ = await new_subject(vault, seed)
        await sms_offers(vault, sid)
        sids.append(sid)
    clock.advance(400 * DAY)
    report = await run_retention(vault, batch=2)
    assert report.expired == 5 and report.erased == 5
    assert {(await subject_row(vault, s)).status for s in sids} == {"erased"}


async def test_concurrent_sweeps_never_double_write(vault, clock):
    """Two sweeps at once (two serve processes) expire and erase each thing exactly once."""
    for seed in range(30, 34):
        sid, _ = await new_subject(vault, seed)
        await sms_offers(vault, sid)
    clock.advance(400 * DAY)
    first, second = await asyncio.gather(run_retention(vault), run_retention(vault))
    assert first.expired + second.expired == 4
    assert first.erased + second.erased == 4
    history = await rows(vault, consent_history, consent_history.c.event == "expired")
    assert len(history) == 4


async def test_a_subject_locked_elsewhere_is_passed_over_not_waited_for(vault, clock):
    """While another transaction holds a due subject's row (a concurrent sweep deciding
    it), the sweep erases the other due subjects without waiting and leaves that one
    stamped; the next sweep erases it (PostgreSQL: SQLite has one writer at a time)."""
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    from sqlalchemy import select

    from vault.storage.tables import subjects

    sids = []
    for seed in range(40, 43):
        sid, _ = await new_subject(vault, seed)
        await withdraw(vault, WRITER, sid, (await contract(vault, sid)).id)
        sids.append(sid)
    clock.advance(400 * DAY)
    async with vault.engine.connect() as other:
        async with other.begin():
            await other.execute(select(subjects).where(subjects.c.id == sids[0]).with_for_update())
            report = await asyncio.wait_for(run_retention(vault), timeout=30)
    statuses = [(await subject_row(vault, s)).status for s in sids]
    assert report.erased == 2 and statuses == ["active", "erased", "erased"]
    assert (await subject_row(vault, sids[0])).retention_check_at is not None
    assert (await run_retention(vault)).erased == 1
    assert (await subject_row(vault, sids[0])).status == "erased"


def test_cli_retention_run_prints_counts(settings, monkeypatch, capsys):
    """`tresor retention run` sweeps the configured vault and prints what it did."""
    from sqlalchemy import update

    from api.cli import main
    from vault.storage.tables import consents

    LocalKeyring.create(settings.keyring_path)

    async def seed() -> None:
        ctx = VaultContext.open(settings)
        try:
            sid = await create_subject(ctx, WRITER, person(40))
            await record_basis(
                ctx,
                WRITER,
                sid,
                "order.delivery",
                reference="o-1",
                expires_at=ctx.clock.now() + DAY,
            )
            async with ctx.engine.begin() as conn:  # as if a day had passed
                await conn.execute(
                    update(consents).values(expires_at=ctx.clock.now() - timedelta(seconds=1))
                )
            await create_subject(ctx, WRITER, person(41))
        finally:
            await ctx.close()

    asyncio.run(seed())
    monkeypatch.setenv("TRESOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRESOR_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("TRESOR_POLICIES", str(settings.policies_dir))
    assert main(["retention", "run", "--nice", "0"]) == 0
    out = capsys.readouterr().out
    assert "expired 1 consents" in out
    assert "erased 0 subjects" in out  # order.delivery keeps data 90 days after its end
    assert "1 subjects without any basis left alone" in out


def test_cli_retention_run_replan_looks_at_every_subject_again(settings, monkeypatch, capsys):
    """`tresor retention run --replan --json` stamps every active subject, also those the
    last sweep settled, and says how many in its summary line."""
    import json

    from api.cli import main

    LocalKeyring.create(settings.keyring_path)

    async def seed() -> None:
        ctx = VaultContext.open(settings)
        try:
            for seed in (42, 43):
                sid = await create_subject(ctx, WRITER, person(seed))
                await record_basis(ctx, WRITER, sid, "order.delivery", reference="o-2")
            await run_retention(ctx)  # both settled: a contract in force, no stamp left
        finally:
            await ctx.close()

    asyncio.run(seed())
    monkeypatch.setenv("TRESOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRESOR_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("TRESOR_POLICIES", str(settings.policies_dir))
    assert main(["retention", "run", "--nice", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["replanned"] == 0
    assert main(["retention", "run", "--nice", "0", "--replan", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["replanned"] == 2 and summary["erased"] == 0


@pytest.mark.parametrize("interval", [0.0])
def test_retention_interval_setting(interval):
    """TRESOR_RETENTION_INTERVAL is read from the environment (default one hour, 0 = off)."""
    from vault.settings import Settings

    assert Settings.from_env({}).retention_interval == 3600.0
    assert (
        Settings.from_env({"TRESOR_RETENTION_INTERVAL": str(interval)}).retention_interval
        == interval
    )


# ------------------------------------------------- rows written before migration 0013


async def _as_before_0013(vault, sid: str, consent_id: str, reference: str) -> None:
    """Rewrite a subject and one of its bases as migration 0013 found them: contact fields
    sealed without a revision (revision 0), the basis's reference in plaintext."""
    from sqlalchemy import select, update

    from vault.storage.tables import consents, subjects
    from vault.subjects.store import _open_texts, sealed_columns

    async with vault.engine.begin() as conn:
        row = (await conn.execute(select(subjects).where(subjects.c.id == sid))).one()
        dek = vault.deks.dek(sid, row.kek_version, row.wrapped_dek)
        texts = _open_texts(
            vault, row._mapping, ("email", "phone", "name", "postal_address", "external_ref")
        )
        await conn.execute(
            update(subjects)
            .where(subjects.c.id == sid)
            .values(
                contact_revision=0,
                **sealed_columns(vault, sid, dek, row.dek_version, texts, revision=0),
            )
        )
        await conn.execute(
            update(consents)
            .where(consents.c.id == consent_id)
            .values(reference=reference, reference_ct=None)
        )


async def test_rows_from_before_0013_read_and_are_brought_up_to_date(vault):
    """Contact fields without a revision and a plaintext reference still read as they are;
    one sweep re-seals the fields at revision 1 (an older ciphertext then fails) and seals
    the reference; the data reads the same afterwards and a second sweep has nothing to do."""
    from vault.access.lookup import lookup
    from vault.bases.consents import list_bases
    from vault.errors import IntegrityFailure

    sid, p = await new_subject(vault, 31)
    basis = await contract(vault, sid)
    await _as_before_0013(vault, sid, basis.id, "Altvertrag 31")
    legacy = await subject_row(vault, sid)
    assert legacy.contact_revision == 0

    async def read() -> tuple[dict, str | None]:
        out = await lookup(
            vault,
            WRITER,
            frozenset({"order.delivery"}),
            purpose_id="order.delivery",
            identifier_kind="phone",
            identifier=p["phone"],
        )
        (listed,) = await list_bases(vault, DPO, sid)
        return out.fields, listed.reference

    fields, reference = await read()
    assert fields["name"] == p["name"] and reference == "Altvertrag 31"
    report = await run_retention(vault)
    assert report.upgraded_rows == 2
    row = await subject_row(vault, sid)
    (stored,) = await consent_rows(vault, sid)
    assert row.contact_revision == 1 and row.phone_bidx == legacy.phone_bidx
    assert stored.reference is None and stored.reference_ct is not None
    assert await read() == (fields, "Altvertrag 31")
    assert (await run_retention(vault)).upgraded_rows == 0
    from sqlalchemy import update

    from vault.storage.tables import subjects

    async with vault.engine.begin() as conn:  # the revision-0 ciphertext put back
        await conn.execute(
            update(subjects).where(subjects.c.id == sid).values(name_ct=legacy.name_ct)
        )
    with pytest.raises(IntegrityFailure):
        await read()


async def test_erasure_clears_plaintext_free_text_of_rows_from_before_0013(vault):
    """A basis's reference still in plaintext (a row from before migration 0013, not yet
    sealed by a sweep) is cleared by the subject's erasure, like the sealed form."""
    from tests.support.dsar import erase

    sid, _ = await new_subject(vault, 32)
    basis = await contract(vault, sid)
    await _as_before_0013(vault, sid, basis.id, "Altvertrag 32")
    await erase(vault, DPO, sid)
    (stored,) = await consent_rows(vault, sid)
    assert (stored.reference, stored.reference_ct) == (None, None)
    assert (stored.notice_version, stored.notice_version_ct) == (None, None)
