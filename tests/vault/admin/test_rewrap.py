"""Batched re-wrap on both databases: guarded batch writes, resuming after a failure,
parallel worker processes, progress reports."""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.factories import ADMIN, WRITER, person
from vault.admin import rewrap as rewrap_module
from vault.admin.keys import RewrapOptions, rewrap_all, versions_in_use
from vault.admin.rewrap import split_points
from vault.admin.wrapped_keys import SUBJECT_DEKS
from vault.audit.events import AuditAction
from vault.context import VaultContext, open_kek_provider
from vault.errors import Unavailable
from vault.pacing import MAX_LOG_PAUSE, ServerReading
from vault.storage.audit_tables import audit_events
from vault.storage.tables import subjects
from vault.subjects.store import create_subject, decrypt_fields, load_subject


class Recorder:
    """A `vault.progress.Progress` that keeps what it was told."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int | None]] = []
        self.done = 0

    def begin(self, task: str, total: int | None) -> None:
        self.phases.append((task, total))

    def advance(self, done: int) -> None:
        self.done += done


async def _create(vault: VaultContext, n: int) -> dict[str, str]:
    """Subject id -> its name, for `n` new subjects."""
    out = {}
    for i in range(n):
        p = person(i)
        out[await create_subject(vault, WRITER, p)] = p["name"]
    return out


async def _names(vault: VaultContext, sids: list[str]) -> dict[str, str]:
    out = {}
    async with vault.transaction() as conn:
        for sid in sids:
            out[sid] = decrypt_fields(vault, await load_subject(conn, sid), ("name",))["name"]
    return out


async def _rewrap_counts(vault: VaultContext) -> list[int]:
    async with vault.transaction() as conn:
        rows = (
            await conn.execute(
                select(audit_events.c.detail)
                .where(audit_events.c.action == AuditAction.KEYS_REWRAP.value)
                .order_by(audit_events.c.seq)
            )
        ).all()
    return [json.loads(r.detail)["count"] for r in rows]


async def test_failed_batch_leaves_a_state_the_next_run_resumes(
    vault: VaultContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage failure in the third batch keeps the two committed batches, rolls back the
    third, and a re-run re-wraps exactly the rest; every DEK still opens. (On PostgreSQL a
    batch is a pass over a window of pages, so its size is that of the pass.)"""
    people = await _create(vault, 23)
    assert vault.kek.add_version() == 2
    real_write, calls = rewrap_module._write, []

    async def failing(conn: Any, keys: Any, olds: list[Any], fresh: list[Any]) -> int:
        calls.append(len(olds))
        done = await real_write(conn, keys, olds, fresh)
        if len(calls) == 3:
            raise Unavailable("storage is unavailable; nothing was changed or revealed")
        return done

    monkeypatch.setattr(rewrap_module, "_write", failing)
    with pytest.raises(Unavailable):
        await rewrap_all(vault, ADMIN, batch=5)
    kept = calls[0] + calls[1]
    assert await versions_in_use(vault) == {1: 23 - kept, 2: kept}
    assert await _rewrap_counts(vault) == calls[:2]
    assert all(0 < n <= 5 for n in calls)

    monkeypatch.setattr(rewrap_module, "_write", real_write)
    assert await rewrap_all(vault, ADMIN, batch=5) == 23 - kept
    assert await versions_in_use(vault) == {2: 23}
    assert await _names(vault, list(people)) == people


async def test_batch_write_skips_a_row_changed_since_it_was_read(vault: VaultContext) -> None:
    """One batched write leaves a row alone whose blob no longer matches what was read,
    and changes the others (the guard of `UPDATE ... FROM unnest` and of executemany)."""
    sids = list(await _create(vault, 3))
    assert vault.kek.add_version() == 2
    async with vault.transaction() as conn:
        before = {r.id: r for r in (await conn.execute(select(subjects))).all()}
    olds, fresh = [], []
    for sid in sids:
        old = before[sid]
        fresh.append(vault.deks.rewrap(sid, old.kek_version, old.wrapped_dek))
        stale = b"stale" if sid == sids[1] else bytes(old.wrapped_dek)
        olds.append((sid, old.kek_version, stale))
    async with vault.transaction() as conn:
        assert await rewrap_module._write(conn, SUBJECT_DEKS, olds, fresh) == 2
        after = {r.id: r for r in (await conn.execute(select(subjects))).all()}
    assert after[sids[1]].wrapped_dek == before[sids[1]].wrapped_dek
    assert after[sids[1]].kek_version == 1
    assert {after[sids[0]].kek_version, after[sids[2]].kek_version} == {2}


async def test_parallel_workers_rewrap_every_dek_and_report_progress(
    vault: VaultContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two workers (concurrent ranges on PostgreSQL, one after the other on SQLite)
    every DEK moves to the new version, each counted once in the progress and the audit."""
    people = await _create(vault, 40)
    assert vault.kek.add_version() == 2
    monkeypatch.setattr(rewrap_module, "PARALLEL_THRESHOLD", 1)
    recorder = Recorder()
    options = RewrapOptions(
        batch=6,
        workers=2,
        open_kek=partial(open_kek_provider, vault.settings),
        progress=recorder,
    )
    assert await rewrap_all(vault, ADMIN, options) == 40
    assert recorder.phases == [("re-wrap subjects", 40)]
    assert recorder.done == 40
    assert sum(await _rewrap_counts(vault)) == 40
    assert await versions_in_use(vault) == {2: 40}
    assert await _names(vault, list(people)) == people
    assert await rewrap_all(vault, ADMIN, options) == 0


def test_split_points_cover_the_id_space_without_overlap() -> None:
    """The ranges start at the empty string, end open, and each starts where the last ended."""
    for workers in (1, 2, 3, 8):
        ranges = split_points(workers)
        assert len(ranges) == workers
        assert ranges[0][0] == "" and ranges[-1][1] is None
        for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
            assert end == start


async def test_paced_rewrap_pauses_after_a_slowed_batch_and_still_rewraps_all(
    vault: VaultContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pacing, batches made slower than the first (as lookups competing for the
    machine would) are followed by a pause; without it there is none; every DEK moves."""
    people = await _create(vault, 12)
    real_write, writes, slept = rewrap_module._write, [], []
    first: list[float] = [0.0]

    async def slowed(conn: Any, keys: Any, olds: list[Any], fresh: list[Any]) -> int:
        # Every batch after a run's first is slowed, by far more than a loaded machine's
        # own jitter (a first batch slow from compiling its statements must not hide it).
        if writes:
            await asyncio.sleep(max(0.5, 5 * first[0]))
        began = time.perf_counter()
        writes.append(len(olds))
        changed = await real_write(conn, keys, olds, fresh)
        if len(writes) == 1:
            first[:] = [time.perf_counter() - began]
        return changed

    async def pause(seconds: float) -> None:
        slept.append(seconds)

    async def no_log_pacer(env: Any, ranges: int) -> None:
        return None  # the batch-time rule alone (the log budget is `test_pacing`'s)

    monkeypatch.setattr(rewrap_module, "_write", slowed)
    monkeypatch.setattr(rewrap_module, "_pause", pause)
    monkeypatch.setattr(rewrap_module, "log_pacer", no_log_pacer)
    assert vault.kek.add_version() == 2
    assert await rewrap_all(vault, ADMIN, RewrapOptions(batch=4, pace=False)) == 12
    assert slept == []
    assert vault.kek.add_version() == 3
    writes.clear()
    assert await rewrap_all(vault, ADMIN, RewrapOptions(batch=4, pace=True)) == 12
    assert len(writes) > 1 and len(slept) == len(writes) - 1 and all(s > 0 for s in slept)
    assert await versions_in_use(vault) == {3: 12}
    assert await _names(vault, list(people)) == people


async def test_paced_rewrap_keeps_to_the_log_budget_while_others_commit(
    vault: VaultContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a paced rotation reads the server after each batch; when others commit
    and the log runs far over its budget, every batch is followed by the longest log pause,
    and every DEK still moves. SQLite has no such reading and pauses only by batch time."""
    people = await _create(vault, 12)
    readings = iter(range(1, 1000))
    slept: list[float] = []

    async def busy_server(conn: Any) -> ServerReading:
        k = next(readings)  # 10 s apart, 1 GB of log and 1,000 commits by others each
        return ServerReading(10.0 * k, 2**30 * k, 1000 * k)

    async def pause(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(rewrap_module, "_read_server", busy_server)
    monkeypatch.setattr(rewrap_module, "_pause", pause)
    assert vault.kek.add_version() == 2
    assert await rewrap_all(vault, ADMIN, RewrapOptions(batch=4, pace=True)) == 12
    assert await versions_in_use(vault) == {2: 12}
    assert await _names(vault, list(people)) == people
    if vault.engine.dialect.name == "postgresql":
        assert slept and all(s == MAX_LOG_PAUSE for s in slept)
    else:
        assert all(s < MAX_LOG_PAUSE for s in slept)
