"""Benchmark of campaign planning (issue 21): booking a campaign for N customers and
forecasting it, in customers per second, against a baseline measured in the same run.

Creates a fresh PostgreSQL database with N customers who consented to SMS offers (rows
written set-based; no contact data is needed to plan), then times, each over all N:

- `book_first`: booking a campaign whose audience is "everyone with a basis" (resolving
  the audience, locking and creating the counter rows, inserting the holds);
- `forecast_first`: its forecast;
- `book_displacing`: booking a campaign served first that displaces the first one's holds
  everywhere (the window function and the displacement updates), confirmed;
- `forecast_displaced`: the displaced campaign's forecast.

The baseline is the irreducible write of a booking done by hand in the same database:
copying N audience rows into a scratch table and adding points to N counter rows in one
UPDATE. Each step prints customers/s and its time as a ratio of the baseline's. Goal
(issue 21): ≥ 50,000 customers/s for booking and forecasting on PostgreSQL.

Then the what-if replay (`vault.campaigns.whatif`) of C recorded contacts of one basket
month (4 per customer, mixed brands, types and channels, written set-based by one
INSERT ... SELECT), under changed points and basket size. Its baseline is streaming the
same rows in the same order through the same server-side cursor and doing nothing with
them: what the replay adds on top of reading is its per-contact arithmetic. Goal
(issue 21): the replay of 1,000,000 contacts in under 30 s.

With `--profile`, each booking also prints its statements' own times (from the driver's
side: sent to result read), longest first, as `profile_<step>`: where a booking's time goes;
and the write-ahead log the server wrote meanwhile, as `wal_mb_<step>` (the whole server's:
run it alone).

Usage: .venv/bin/python bench/plan.py [--subjects 1000000] [--contacts 1000000]
[--only-whatif] [--profile]
PostgreSQL from TRESOR_BENCH_PG_URL (a database tresor_bench_plan, or TRESOR_BENCH_PLAN_DB,
is created and dropped: runs sharing a server at the same time need names of their own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lookup import PG_ADMIN, _admin  # noqa: E402 - after sys.path
from vault.audit.events import Actor  # noqa: E402 - after sys.path
from vault.campaigns import booking, forecast, records, whatif  # noqa: E402 - after sys.path
from vault.clock import FrozenClock  # noqa: E402 - after sys.path
from vault.context import VaultContext  # noqa: E402 - after sys.path
from vault.crypto import LocalKeyring  # noqa: E402 - after sys.path
from vault.settings import Settings  # noqa: E402 - after sys.path
from vault.storage.db import upgrade  # noqa: E402 - after sys.path
from vault.storage.outreach_tables import contacts  # noqa: E402 - after sys.path

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
PLANNER = Actor("client", "bench-planner")


async def _seed(ctx: VaultContext, n: int) -> None:
    """N active customers with a granted consent for offers.sms, set-based."""
    async with ctx.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO subjects (id, status, dek_version, contact_revision, created_at,"
                " updated_at) SELECT gen_random_uuid()::text, 'active', 1, 0, :now, :now"
                " FROM generate_series(1, :n)"
            ),
            {"n": n, "now": NOW},
        )
        await conn.execute(
            text(
                "INSERT INTO consents (id, subject_id, purpose, basis, status, created_at,"
                " granted_at) SELECT gen_random_uuid()::text, id, 'offers.sms', 'consent',"
                " 'granted', :now, :now FROM subjects"
            ),
            {"now": NOW},
        )
    await _admin("VACUUM ANALYZE", url=str(ctx.settings.database_url))


async def _baseline(ctx: VaultContext, campaign_id: str) -> float:
    """The irreducible writes of a booking, by hand: N rows copied, N counters raised."""
    started = time.perf_counter()
    async with ctx.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TEMP TABLE scratch ON COMMIT DROP AS SELECT subject_id FROM"
                " campaign_audience WHERE campaign_id = :c"
            ),
            {"c": campaign_id},
        )
        await conn.execute(
            text(
                "UPDATE contact_budgets SET booked_tenths = booked_tenths + 1 WHERE"
                " subject_id IN (SELECT subject_id FROM scratch)"
            )
        )
        await conn.execute(text("UPDATE contact_budgets SET booked_tenths = booked_tenths - 1"))
        raise_rollback = conn.get_transaction()
        if raise_rollback is not None:
            await raise_rollback.rollback()
    return time.perf_counter() - started


async def _seed_contacts(ctx: VaultContext, c: int) -> None:
    """C outbound contacts of November 2026, 4 per customer, one minute apart, set-based."""
    async with ctx.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (id, subject_id, at, month, brand, channel, type,"
                " priority, points_tenths, direction)"
                " SELECT gen_random_uuid()::text, s.sid,"
                " CAST(:start AS timestamptz) + g * interval '1 minute',"
                " '2026-11', (ARRAY['tresor','tresor_outlet','tresor_finance'])[1 + g % 3],"
                " (ARRAY['email','sms'])[1 + (g / 3) % 2],"
                " (ARRAY['commercial','editorial','service'])[1 + (g / 2) % 3], 'normal',"
                " 50, 'outbound'"
                " FROM (SELECT gen_random_uuid()::text AS sid FROM generate_series(1, :n)) s"
                " CROSS JOIN generate_series(0, 3) g"
            ),
            {"n": c // 4, "start": datetime(2026, 11, 2, 8, 0, tzinfo=UTC)},
        )
    await _admin("VACUUM ANALYZE contacts", url=str(ctx.settings.database_url))


async def _stream_baseline(ctx: VaultContext) -> tuple[float, int]:
    """Reading the month's contacts in the replay's order, doing nothing with them."""
    c = contacts.c
    query = (
        select(c.subject_id, c.brand, c.type, c.channel, c.priority)
        .where(c.month == "2026-11", c.direction == "outbound")
        .order_by(c.subject_id, c.at, c.id)
        .execution_options(yield_per=whatif.CHUNK)
    )
    started = time.perf_counter()
    rows = 0
    async with ctx.engine.connect() as conn:
        stream = await conn.stream(query)
        async for chunk in stream.partitions(whatif.CHUNK):
            rows += len(chunk)
    return time.perf_counter() - started, rows


async def run_whatif(c: int, url: str, data: Path) -> dict[str, object]:
    """Seed C contacts, then time the streaming baseline and the what-if replay."""
    settings = Settings(data_dir=data, database_url=url, client_cache_seconds=0)
    ctx = VaultContext.open(settings, clock=FrozenClock(NOW))
    try:
        t = time.perf_counter()
        await _seed_contacts(ctx, c)
        seeded = time.perf_counter() - t
        baseline, rows = await _stream_baseline(ctx)
        _check(rows == c // 4 * 4, rows)
        changes = whatif.RuleChanges(points={"commercial": 8}, basket_points=20)
        t = time.perf_counter()
        result = await whatif.what_if(ctx, PLANNER, "2026-11", changes)
        replay = time.perf_counter() - t
        _check(result.contacts == rows, result.contacts)
    finally:
        await ctx.close()
    return {
        "contacts": rows,
        "seed_contacts_s": round(seeded, 2),
        "stream_baseline_s": round(baseline, 3),
        "whatif_replay": {
            "seconds": round(replay, 3),
            "contacts_per_s": round(rows / replay),
            "ratio_to_baseline": round(replay / baseline, 2),
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


class _StatementTimes:
    """Each statement's time (cursor execute to its result) while `recording`, keyed by
    its first words, so a step's time can be split by statement (`--profile`)."""

    def __init__(self, ctx: VaultContext) -> None:
        self.times: list[tuple[str, float]] = []
        self.recording = False
        self._started: float = 0.0
        engine = ctx.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: object) -> None:
        self._started = time.perf_counter()

    def _after(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        if self.recording:
            self.times.append(
                (" ".join(statement.split())[:110], time.perf_counter() - self._started)
            )

    def take(self) -> list[list[object]]:
        """The recorded statements, longest first (those over 10 ms), and a fresh record."""
        rows = sorted(self.times, key=lambda t: -t[1])
        self.times = []
        return [[round(s, 3), sql] for sql, s in rows if s >= 0.01]


async def _wal_position(ctx: VaultContext) -> float:
    """The server's write-ahead log position, in bytes."""
    async with ctx.engine.connect() as conn:
        at = await conn.execute(text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))
        return float(at.scalar_one())


async def _wal_since(ctx: VaultContext, start: float) -> float:
    """Megabytes of write-ahead log the server wrote since `start` (`_wal_position`)."""
    return round((await _wal_position(ctx) - start) / 2**20, 1)


def _check(ok: bool, what: object) -> None:
    """Stop the run when a step did not do what it is timed for."""
    if not ok:
        raise SystemExit(f"unexpected result: {what}")


async def _campaign(ctx: VaultContext, name: str, rank: int) -> str:
    camp = await records.create(
        ctx, PLANNER, frozenset(),
        records.CampaignDraft(
            name=name, brand="tresor", purpose="offers.sms", rank=rank,
            window_start=NOW, window_end=NOW + timedelta(days=2),
            audience_kind=records.AudienceKind.BASIS,
        ),
    )  # fmt: skip
    return camp.id


async def run(n: int, url: str, data: Path, profile: bool = False) -> dict[str, object]:
    settings = Settings(data_dir=data, database_url=url, client_cache_seconds=0)
    ctx = VaultContext.open(settings, clock=FrozenClock(NOW))
    statements = _StatementTimes(ctx)
    profiles: dict[str, object] = {}
    try:
        started = time.perf_counter()
        await _seed(ctx, n)
        seeded = time.perf_counter() - started
        first = await _campaign(ctx, "first", 2)
        served_first = await _campaign(ctx, "served first", 1)
        timings: dict[str, float] = {}

        wal = await _wal_position(ctx)
        t = time.perf_counter()
        statements.recording = profile
        outcome = await booking.book(ctx, PLANNER, first)
        timings["book_first"] = time.perf_counter() - t
        statements.recording = False
        if profile:
            profiles["profile_book_first"] = statements.take()
            profiles["wal_mb_book_first"] = await _wal_since(ctx, wal)
        _check(outcome.booked == n, outcome)

        t = time.perf_counter()
        _, f = await forecast.forecast(ctx, PLANNER, first)
        timings["forecast_first"] = time.perf_counter() - t
        _check(f.reachable == n, f)

        baseline = await _baseline(ctx, first)

        wal = await _wal_position(ctx)
        t = time.perf_counter()
        statements.recording = profile
        outcome = await booking.book(ctx, PLANNER, served_first, confirm_displacement=True)
        timings["book_displacing"] = time.perf_counter() - t
        statements.recording = False
        if profile:
            profiles["profile_book_displacing"] = statements.take()
            profiles["wal_mb_book_displacing"] = await _wal_since(ctx, wal)
        _check(outcome.booked == n and outcome.displaced[0].count == n, outcome)

        t = time.perf_counter()
        _, f = await forecast.forecast(ctx, PLANNER, first)
        timings["forecast_displaced"] = time.perf_counter() - t
        _check(f.blocked_by_basket == n, f)
    finally:
        await ctx.close()
    return {
        "subjects": n,
        "seed_s": round(seeded, 2),
        "baseline_s": round(baseline, 3),
        "baseline_customers_per_s": round(n / baseline),
        **{
            name: {
                "seconds": round(s, 3),
                "customers_per_s": round(n / s),
                "ratio_to_baseline": round(s / baseline, 2),
            }
            for name, s in timings.items()
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **profiles,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=1_000_000)
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--only-whatif", action="store_true", help="skip booking and forecasting")
    p.add_argument("--profile", action="store_true", help="print the bookings' statement times")
    args = p.parse_args()
    name = os.environ.get("TRESOR_BENCH_PLAN_DB", "tresor_bench_plan")
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    asyncio.run(
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    )
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            LocalKeyring.create(data / "keyring.json")
            if not args.only_whatif:
                print(json.dumps(asyncio.run(run(args.subjects, url, data, args.profile))))
            print(json.dumps(asyncio.run(run_whatif(args.contacts, url, data))))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
