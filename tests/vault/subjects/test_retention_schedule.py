"""Subjects are stamped for the retention sweep by the writes that can make them due, the
sweep re-stamps or clears them by its verdict, and `replan` stamps everyone again (a
shortened retention then applies at the next run), on both databases."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from tests.support.dsar import DPO, contract, new_subject, subject_row
from tests.support.factories import WRITER
from vault.bases.consents import withdraw
from vault.clock import as_utc
from vault.rights.restriction import restrict
from vault.rights.retention import run_retention
from vault.rights.retention_plan import replan
from vault.subjects import retention_schedule

DAY = timedelta(days=1)


async def stamp(vault, sid):
    row = await subject_row(vault, sid)
    return None if row.retention_check_at is None else as_utc(row.retention_check_at)


async def test_a_new_subject_is_stamped_and_a_basis_in_force_clears_it_at_the_sweep(vault, clock):
    """A stored subject is stamped at once; the sweep sees its contract in force and
    clears the stamp, so later sweeps do not look at it."""
    sid, _ = await new_subject(vault, 1)
    assert await stamp(vault, sid) == clock.now()
    await contract(vault, sid)
    await run_retention(vault)
    assert await stamp(vault, sid) is None


async def test_ending_a_basis_stamps_and_the_sweep_waits_until_its_retention_ends(vault, clock):
    """Withdrawing the contract stamps the subject now; the sweep re-stamps it with the end
    of the 90-day retention and erases it at that time."""
    sid, _ = await new_subject(vault, 2)
    deal = await contract(vault, sid)
    await run_retention(vault)
    clock.advance(DAY)
    ended_at = clock.now()
    await withdraw(vault, WRITER, sid, deal.id)
    assert await stamp(vault, sid) == ended_at
    clock.advance(DAY)
    assert (await run_retention(vault)).erased == 0
    assert await stamp(vault, sid) == ended_at + 90 * DAY
    clock.set(ended_at + 90 * DAY)
    assert (await run_retention(vault)).erased == 1
    assert await stamp(vault, sid) is None


async def test_an_earlier_stamp_stays(vault, clock):
    """`check_at` never moves a stamp later: what is due stays due."""
    sid, _ = await new_subject(vault, 3)
    first = clock.now()
    async with vault.transaction() as conn:
        await retention_schedule.check_at(conn, sid, first + DAY)
    assert await stamp(vault, sid) == first


async def test_a_skipped_subject_stays_stamped_and_is_counted_by_each_run(vault, clock):
    """A restricted subject due for erasure is skipped by every run, not forgotten."""
    sid, _ = await new_subject(vault, 4)
    deal = await contract(vault, sid)
    await withdraw(vault, WRITER, sid, deal.id)
    await restrict(vault, DPO, sid)
    clock.advance(91 * DAY)
    assert (await run_retention(vault)).skipped == 1
    assert (await run_retention(vault)).skipped == 1
    assert await stamp(vault, sid) is not None


async def test_replan_applies_a_shortened_retention_at_the_next_run(vault, clock, monkeypatch):
    """A stamp computed with the 90-day retention is too late once it is shortened to 10
    days; after `replan` the next run erases the subject."""
    sid, _ = await new_subject(vault, 5)
    deal = await contract(vault, sid)
    await withdraw(vault, WRITER, sid, deal.id)
    await run_retention(vault)
    purpose = vault.catalogue.get("order.delivery")
    shorter = dataclasses.replace(purpose, retention_after_end=10 * DAY)
    monkeypatch.setitem(vault.catalogue.purposes, "order.delivery", shorter)
    clock.advance(11 * DAY)
    assert (await run_retention(vault)).erased == 0
    assert await replan(vault) == 1
    assert (await run_retention(vault)).erased == 1
    assert (await subject_row(vault, sid)).status == "erased"


#: The modules that change a basis's stored status, each stamping the subject where the
#: basis stops being in force (superseding and confirming leave a basis in force).
STATUS_WRITERS = {
    "vault/bases/ending.py",  # stamps (end_live_bases)
    "vault/bases/consents/withdrawal.py",  # stamps
    "vault/rights/retention.py",  # stamps on expiry and lapse
    "vault/bases/consents/recording.py",  # superseded by a new basis in force
    "vault/bases/consents/confirmation.py",  # pending -> granted
}


def test_only_the_known_writers_change_a_basis_status():
    """A new module that ends bases without stamping the subject would leave it unerased
    forever: any `update(consents)` that sets a status outside the known writers fails here
    (route it through `vault.bases.ending.end_live_bases`, or stamp the subject)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    found = set()
    for path in (root / "vault").rglob("*.py"):
        source = path.read_text()
        for match in re.finditer(r"update\(consents\)(.{0,600}?)\.values\(", source, re.S):
            tail = source[match.end() : match.end() + 200]
            if re.match(r"\s*status\s*=", tail) or re.search(r"\bstatus\s*=", tail.split(")")[0]):
                found.add(str(path.relative_to(root)))
    assert found == STATUS_WRITERS
