"""The DPO's audit search, access and consent statistics and chain status, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.factories import WRITER, person
from vault.access.lookup import LookupDenied, LookupNotFound, lookup
from vault.audit import chain as audit_chain
from vault.audit import query as audit_query
from vault.audit import stats as audit_stats
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.audit.query import AuditFilter
from vault.bases.consents import Evidence, record_basis, withdraw
from vault.errors import InvalidInput
from vault.outreach.basket import ContactSpec
from vault.storage.audit_tables import audit_events
from vault.subjects.store import create_subject

DPO = Actor("dpo", "datenschutz", "req-dpo")
SHOP = Actor("client", "shop", "req-shop")
CRM = Actor("client", "crm", "req-crm")
EXPLICIT = Evidence(
    touchpoint="shop.counter",
    method="signature",
    notice_version="2026-10",
    language="de",
    explicit=True,
    ip="203.0.113.7",
    user_agent="Mozilla/5.0 (X11; Linux) Firefox/140.0",
)


async def _read(vault, actor: Actor, purpose: str, sid: str, allowed: frozenset[str]) -> str:
    """One lookup by subject id; returns 'allow' or the denial reason."""
    try:
        known = vault.catalogue.get(purpose)
        await lookup(
            vault, actor, allowed, purpose_id=purpose, identifier_kind="subject_id",
            identifier=sid,
            contact=ContactSpec(brand="tresor") if known and known.needs_contact else None,
        )  # fmt: skip
    except (LookupDenied, LookupNotFound) as exc:
        return str(exc.reason)
    return "allow"


async def _customer(vault, seed: int) -> tuple[dict[str, Any], str]:
    p = person(seed)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(vault, WRITER, sid, "order.delivery", reference=f"Bestellung {seed}")
    return p, sid


async def _all_events(vault) -> list[Any]:
    async with vault.engine.connect() as conn:
        return list((await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all())


async def _scene(vault, clock) -> dict[str, Any]:
    """Two customers; the shop reads (allowed and denied), the CRM reads later."""
    p1, s1 = await _customer(vault, 1)
    p2, s2 = await _customer(vault, 2)
    shop_purposes = frozenset({"order.delivery", "offers.sms"})
    for _ in range(3):
        assert await _read(vault, SHOP, "order.delivery", s1, shop_purposes) == "allow"
    assert await _read(vault, SHOP, "offers.sms", s1, shop_purposes) == "no_consent"
    assert await _read(vault, SHOP, "account.service", s2, shop_purposes) == "purpose_not_allowed"
    clock.advance(timedelta(hours=2))
    assert await _read(vault, CRM, "order.delivery", s2, frozenset({"order.delivery"})) == "allow"
    return {"people": [p1, p2], "subjects": [s1, s2]}


async def test_search_filters_by_subject_client_purpose_decision_and_time(vault, clock):
    """Each filter narrows to exactly the events it names; filters combine with AND."""
    scene = await _scene(vault, clock)
    s1, s2 = scene["subjects"]
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    page = await audit_query.search(vault, DPO, AuditFilter(subject_id=s1))
    assert page.items and {e.subject_id for e in page.items} == {s1}
    assert [e.seq for e in page.items] == sorted((e.seq for e in page.items), reverse=True)

    page = await audit_query.search(vault, DPO, AuditFilter(client="shop"))
    assert len(page.items) == 5 and {e.actor_id for e in page.items} == {"shop"}

    page = await audit_query.search(vault, DPO, AuditFilter(client="shop", decision="deny"))
    assert sorted(e.reason for e in page.items) == ["no_consent", "purpose_not_allowed"]

    page = await audit_query.search(
        vault, DPO, AuditFilter(purpose="order.delivery", client="shop")
    )
    assert len(page.items) == 3
    assert all(sorted(e.fields) == ["name", "phone", "postal_address"] for e in page.items)
    assert all(e.consent_id for e in page.items) and not any(e.sealed for e in page.items)

    page = await audit_query.search(
        vault, DPO, AuditFilter(since=t0 + timedelta(hours=1), action="lookup")
    )
    assert [(e.actor_id, e.subject_id) for e in page.items] == [("crm", s2)]
    page = await audit_query.search(
        vault, DPO, AuditFilter(until=t0 + timedelta(hours=1), subject_id=s2)
    )
    assert {e.actor_id for e in page.items} == {"crm", "shop"}  # creation (crm) and the denial


async def test_action_filter_matches_the_tag_or_its_last_part(vault, clock):
    """`lookup` and `contact:lookup` find client:contact:lookup; a partial word finds nothing."""
    await _scene(vault, clock)
    full = await audit_query.search(vault, DPO, AuditFilter(action="client:contact:lookup"))
    short = await audit_query.search(vault, DPO, AuditFilter(action="lookup"))
    middle = await audit_query.search(vault, DPO, AuditFilter(action="contact:lookup"))
    assert len(full.items) == 6
    seqs = [e.seq for e in full.items]
    assert [e.seq for e in short.items] == seqs == [e.seq for e in middle.items]
    assert (await audit_query.search(vault, DPO, AuditFilter(action="look"))).items == []
    created = await audit_query.search(vault, DPO, AuditFilter(action="create"))
    assert {e.action for e in created.items} == {"client:subject:create"}


async def test_cursor_pages_cover_every_event_once(vault, clock):
    """Walking the pages yields every matching event exactly once, newest first."""
    for i in range(23):
        async with vault.transaction() as conn:
            await record(
                conn,
                at=clock.now(),
                actor=SHOP,
                action=AuditAction.LOOKUP,
                decision=Decision.ALLOW if i % 4 else Decision.DENY,
                subject_id="0f0e0d0c-0b0a-4908-8706-050403020100",
                purpose="order.delivery",
                reason=None if i % 4 else "no_consent",
            )
    everything = [e.seq for e in await _all_events(vault) if e.action == AuditAction.LOOKUP]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = await audit_query.search(
            vault, DPO, AuditFilter(action="lookup"), limit=5, cursor=cursor
        )
        pages += 1
        seen += [e.seq for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 5
    assert seen == sorted(everything, reverse=True)
    assert len(seen) == len(set(seen)) == 23
    denied = await audit_query.search(vault, DPO, AuditFilter(decision="deny"), limit=6)
    assert len(denied.items) == 6 and denied.next_cursor is None


async def test_exact_page_size_has_no_phantom_next_page(vault, clock):
    """When the matches fill the last page exactly, next_cursor is None."""
    await _scene(vault, clock)
    page = await audit_query.search(vault, DPO, AuditFilter(client="shop"), limit=5)
    assert len(page.items) == 5 and page.next_cursor is None


async def test_each_search_is_audited_with_its_filters_and_without_itself(vault, clock):
    """The search writes dpo:audit:search with the filters; its results do not include it."""
    scene = await _scene(vault, clock)
    s1 = scene["subjects"][0]
    page = await audit_query.search(
        vault, DPO, AuditFilter(subject_id=s1, action="lookup"), limit=2
    )
    assert all(e.action != AuditAction.DPO_AUDIT_SEARCH for e in page.items)
    events = [e for e in await _all_events(vault) if e.action == AuditAction.DPO_AUDIT_SEARCH]
    assert len(events) == 1
    e = events[0]
    assert (e.actor_type, e.actor_id, e.request_id) == ("dpo", "datenschutz", "req-dpo")
    assert e.subject_id == s1 and e.decision == "allow"
    detail = json.loads(e.detail)
    assert detail == {"filters": {"subject_id": s1, "action": "lookup"}, "returned": 2}
    await audit_query.search(vault, DPO, AuditFilter(), cursor=page.next_cursor)
    events = [e for e in await _all_events(vault) if e.action == AuditAction.DPO_AUDIT_SEARCH]
    assert len(events) == 2 and "page_below_seq" in json.loads(events[1].detail)


async def test_a_reversed_range_selects_no_event(vault):
    """A reversed time range is answered with an empty page (nothing lies in it), not
    refused: the search is still audited."""
    page = await audit_query.search(
        vault,
        DPO,
        AuditFilter(
            since=datetime(2026, 11, 2, tzinfo=UTC), until=datetime(2026, 11, 1, tzinfo=UTC)
        ),
    )
    assert page.items == [] and page.next_cursor is None
    events = [e for e in await _all_events(vault) if e.action == AuditAction.DPO_AUDIT_SEARCH]
    assert len(events) == 1


async def test_times_before_1970_or_after_9000_mean_the_whole_trail(vault):
    """A time before the trail's first possible instant (1970) or after its last (9000) is
    moved to it, so "since the year 1" finds every event instead of being refused."""
    whole = await audit_query.search(vault, DPO, AuditFilter())
    early = await audit_query.search(
        vault,
        DPO,
        AuditFilter(since=datetime(1, 1, 1, tzinfo=UTC), until=datetime(9999, 12, 31, tzinfo=UTC)),
    )
    # The second search also finds the first one's own audit event, newest first.
    assert [e.seq for e in early.items][1:] == [e.seq for e in whole.items]
    assert early.items[0].action == AuditAction.DPO_AUDIT_SEARCH


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        (AuditFilter(subject_id="erika.mustermann@example.org"), "subject_id"),
        (AuditFilter(client="Erika Mustermann"), "client"),
        (AuditFilter(purpose="+49 30 1234567"), "purpose"),
        (AuditFilter(action="erika@example.org"), "action"),
        (AuditFilter(decision="maybe"), "decision"),
        (AuditFilter(since=datetime(2026, 11, 1)), "since"),
    ],
)
async def test_bad_filters_are_refused_and_write_nothing(vault, filters, field):
    """A filter that is not an id, name or tag is refused by field name, and nothing is audited."""
    before = len(await _all_events(vault))
    with pytest.raises(InvalidInput) as info:
        await audit_query.search(vault, DPO, filters)
    assert field in info.value.errors
    assert "@" not in str(info.value) and "Mustermann" not in str(info.value.errors)
    assert len(await _all_events(vault)) == before


@pytest.mark.parametrize("cursor", ["", "x", "c1.", "c1.!!", "c1.YWJj", "c2.MTA", "c1." + "A" * 30])
async def test_foreign_cursors_are_refused(vault, cursor):
    """Only a next_cursor this API handed out is accepted."""
    with pytest.raises(InvalidInput) as info:
        await audit_query.search(vault, DPO, AuditFilter(), cursor=cursor)
    assert "cursor" in info.value.errors


@pytest.mark.parametrize("limit", [0, 501, -1])
async def test_limit_is_bounded(vault, limit):
    """Page sizes outside 1..500 are refused."""
    with pytest.raises(InvalidInput):
        await audit_query.search(vault, DPO, AuditFilter(), limit=limit)


async def test_access_stats_add_up(vault, clock):
    """Per-client totals, per-reason denials and the time series all sum to the same lookups."""
    await _scene(vault, clock)
    clock.advance(timedelta(days=1))
    stats = await audit_stats.access_stats(
        vault,
        DPO,
        bucket="hour",
        since=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        until=datetime(2026, 11, 23, 14, 0, tzinfo=UTC),
    )
    assert (stats.total, stats.allowed, stats.denied) == (6, 4, 2)
    pairs = {(r.client, r.purpose): (r.allowed, r.denied) for r in stats.by_client_purpose}
    assert pairs == {
        ("shop", "order.delivery"): (3, 0),
        ("shop", "offers.sms"): (0, 1),
        ("shop", "account.service"): (0, 1),
        ("crm", "order.delivery"): (1, 0),
    }
    assert stats.by_client_purpose[0].client == "shop" and stats.by_client_purpose[0].total == 3
    assert {r.reason: r.count for r in stats.denials_by_reason} == {
        "no_consent": 1,
        "purpose_not_allowed": 1,
    }
    assert [b.start.hour for b in stats.series] == [9, 10, 11, 12, 13]
    assert [(b.allowed, b.denied) for b in stats.series] == [(0, 0), (3, 2), (0, 0), (1, 0), (0, 0)]
    assert sum(b.total for b in stats.series) == stats.total

    daily = await audit_stats.access_stats(vault, DPO)
    assert len(daily.series) == 30 and daily.until == datetime(2026, 11, 25, tzinfo=UTC)
    assert [b for b in daily.series if b.total] == [
        audit_stats.BucketCount(datetime(2026, 11, 23, tzinfo=UTC), 4, 2)
    ]
    assert [e.action for e in await _all_events(vault)].count(AuditAction.DPO_AUDIT_STATS) == 2


async def test_access_stats_refuse_unknown_buckets_and_answer_any_range(vault):
    """An unknown bucket is refused; an empty range has no bucket, and a range of too many
    buckets is cut to the last 2000 (its `since` moved), since whether it is too long
    depends on the server's clock."""
    with pytest.raises(InvalidInput):
        await audit_stats.access_stats(vault, DPO, bucket="week")
    empty = await audit_stats.access_stats(
        vault,
        DPO,
        since=datetime(2026, 1, 2, tzinfo=UTC),
        until=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert empty.series == [] and empty.total == 0
    until = datetime(2026, 11, 1, tzinfo=UTC)
    long = await audit_stats.access_stats(
        vault, DPO, bucket="hour", since=datetime(2020, 1, 1, tzinfo=UTC), until=until
    )
    assert len(long.series) == audit_stats.MAX_BUCKETS
    assert long.since == until - timedelta(hours=audit_stats.MAX_BUCKETS)


async def test_consent_stats_count_grants_withdrawals_and_expiries(vault, clock):
    """Grants, withdrawals and expiries land in the bucket of the day they happened."""
    sids = [await create_subject(vault, WRITER, person(10 + i)) for i in range(3)]
    first = await record_basis(vault, WRITER, sids[0], "offers.sms", evidence=EXPLICIT)
    await record_basis(
        vault,
        WRITER,
        sids[1],
        "offers.sms",
        evidence=EXPLICIT,
        expires_at=clock.now() + timedelta(days=2, hours=1),
    )
    await record_basis(vault, WRITER, sids[2], "offers.phone", evidence=EXPLICIT)
    await record_basis(vault, WRITER, sids[2], "order.delivery", reference="B-1")  # not a consent
    clock.advance(timedelta(days=1))
    await withdraw(vault, WRITER, sids[0], first.id)
    clock.advance(timedelta(days=3))
    stats = await audit_stats.consent_stats(vault, DPO, since=datetime(2026, 11, 22, tzinfo=UTC))
    by = {p.purpose: p for p in stats.purposes}
    assert "order.delivery" not in by and {"newsletter.email", "offers.email"} <= set(by)
    sms = by["offers.sms"]
    assert (sms.granted, sms.withdrawn, sms.expired) == (2, 1, 1)
    days = {b.start.day: (b.granted, b.withdrawn, b.expired) for b in sms.series}
    assert days[23] == (2, 0, 0) and days[24] == (0, 1, 0) and days[25] == (0, 0, 1)
    assert (by["offers.phone"].granted, by["offers.phone"].withdrawn) == (1, 0)
    assert by["newsletter.email"].granted == 0 and len(by["newsletter.email"].series) == 6
    assert [e.action for e in await _all_events(vault)].count(AuditAction.DPO_CONSENT_STATS) == 1


async def test_chain_status_reports_the_verification_and_is_audited(vault, clock):
    """After sealing the chain verifies; the status names the last checkpoint and is audited."""
    await _scene(vault, clock)
    await audit_chain.seal_all(vault, grace=timedelta(0))
    status = await audit_stats.chain_status(vault, DPO)
    assert status.ok and status.broken_seq is None and status.unsealed == 0
    assert status.verified == len(await _all_events(vault)) - 1
    assert status.last_checkpoint_position == status.verified == status.last_verified_checkpoint
    assert status.last_checkpoint_at == clock.now() and status.key_id
    chain_events = [e for e in await _all_events(vault) if e.action == AuditAction.DPO_AUDIT_CHAIN]
    assert len(chain_events) == 1 and json.loads(chain_events[0].detail)["ok"] is True


async def test_dpo_reads_put_no_contact_data_into_the_trail(vault, clock):
    """No event written by the DPO's reads holds any contact value of the subjects read about."""
    scene = await _scene(vault, clock)
    for sid in scene["subjects"]:
        await audit_query.search(vault, DPO, AuditFilter(subject_id=sid, action="lookup"))
    await audit_stats.access_stats(vault, DPO)
    await audit_stats.consent_stats(vault, DPO)
    await audit_stats.chain_status(vault, DPO)
    text = json.dumps([[str(v) for v in e] for e in await _all_events(vault)])
    for p in scene["people"]:
        street = p["postal_address"]["street"]
        for value in (p["email"], p["phone"], p["name"], p["external_ref"], street):
            assert value not in text
