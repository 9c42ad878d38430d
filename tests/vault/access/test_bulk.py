"""Bulk resolution and the audience dry run on both databases: one audited event per line,
input order, mixed outcomes, no identifier echoed, limits, fail closed per chunk."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from bench.seed import seed
from tests.support.factories import WRITER, person
from tests.support.faults import PG_OFF, PG_ON, SQLITE_OFF, SQLITE_ON
from tests.support.privacy import audit_rows, execute_ddl, is_sqlite
from vault.access import bulk, dry_run, statements
from vault.access.lookup import LookupDenied
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases.consents import record_basis, withdraw
from vault.clock import as_utc
from vault.errors import InvalidInput, Unavailable
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-batch-1")
ALLOWED = frozenset({"order.delivery", "newsletter.email"})
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def _lines(
    vault,
    kind: str,
    values: list[str],
    *,
    purpose="order.delivery",
    fields=None,
    allowed=ALLOWED,
    chunk_size: int = bulk.CHUNK,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for blob in bulk.resolve_batch(
        vault,
        SHOP,
        allowed,
        purpose_id=purpose,
        identifier_kind=kind,
        identifiers=values,
        fields=fields,
        chunk_size=chunk_size,
    ):
        out.extend(json.loads(x) for x in blob.decode().splitlines())
    return out


async def _lookup_events(vault) -> list[dict[str, Any]]:
    return [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]


async def _population(vault) -> dict[str, Any]:
    """Three customers with a delivery contract, one whose contract was ended (denied),
    one without any basis (no_consent)."""
    people = [person(700 + n) for n in range(5)]
    ids = [await create_subject(vault, WRITER, p) for p in people]
    for sid in ids[:3]:
        await record_basis(vault, WRITER, sid, "order.delivery", reference="order")
    ended = (await record_basis(vault, WRITER, ids[3], "order.delivery", reference="x")).id
    await withdraw(vault, WRITER, ids[3], ended)  # ends the contract basis
    return {"people": people, "ids": ids, "ended": ended}


async def test_mixed_batch_in_order_each_line_audited(vault):
    pop = await _population(vault)
    ids = pop["ids"]
    values = [ids[0], UNKNOWN_ID, ids[4], "not-a-uuid", ids[1], ids[3], ids[0], ids[2]]
    lines = await _lines(vault, "subject_id", values, chunk_size=3)
    assert [line["i"] for line in lines] == list(range(len(values)))
    by_i = {line["i"]: line for line in lines}
    for i in (0, 4, 6, 7):
        assert by_i[i]["subject_id"] == values[i]
        assert (
            set(by_i[i]["fields"])
            == {"name", "postal_address", "phone", "email"} & set(by_i[i]["fields"])
            and by_i[i]["fields"]
        )
        assert by_i[i]["basis"]["type"] == "contract"
    assert by_i[0]["fields"]["phone"] == pop["people"][0]["phone"]
    assert (by_i[1]["reason"], by_i[1]["status"]) == ("subject_not_found", 404)
    assert (by_i[2]["reason"], by_i[2]["status"]) == ("no_consent", 403)
    assert (by_i[3]["reason"], by_i[3]["status"]) == ("invalid_identifier", 422)
    assert by_i[5]["status"] == 403 and by_i[5]["reason"] != "no_consent"

    events = await _lookup_events(vault)
    assert len(events) == len(lines)
    for e in events:
        detail = json.loads(e["detail"])
        line = by_i[detail["i"]]
        assert detail["batch"] == SHOP.request_id and e["request_id"] == SHOP.request_id
        if "reason" in line:
            assert (e["decision"], e["reason"]) == ("deny", line["reason"])
        else:
            assert e["decision"] == "allow" and e["subject_id"] == line["subject_id"]
            assert e["fields"] == ",".join(sorted(line["fields"]))
            assert e["consent_id"] == line["basis"]["id"]
    # the invalid value never reaches the trail; a well-formed unknown id does
    assert {e["subject_id"] for e in events if e["reason"] == "invalid_identifier"} == {None}


async def test_each_event_is_what_event_row_makes_for_its_line(vault):
    """The event records bulk resolution builds column by column are exactly the events
    `audit.event_row` makes for the same outcome, allowed and denied."""
    pop = await _population(vault)
    ids = pop["ids"]
    values = [ids[0], UNKNOWN_ID, ids[4], "not-a-uuid", ids[3], ids[1]]
    asked = ["phone", "name"]
    lines = await _lines(vault, "subject_id", values, fields=asked, chunk_size=2)
    events = await _lookup_events(vault)
    assert len(events) == len(values)
    for e in events:
        i = json.loads(e["detail"])["i"]
        line = lines[i]
        common = {
            "at": vault.clock.now(),
            "actor": SHOP,
            "action": AuditAction.LOOKUP,
            "purpose": "order.delivery",
            "detail": {"batch": SHOP.request_id, "by": "subject_id", "i": i},
        }
        if "fields" in line:
            expected = audit.event_row(
                **common,
                decision=Decision.ALLOW,
                subject_id=line["subject_id"],
                fields=sorted(line["fields"]),
                consent_id=line["basis"]["id"],
            )
        else:
            expected = audit.event_row(
                **common,
                decision=Decision.DENY,
                fields=asked,
                reason=line["reason"],
                subject_id=None if line["reason"] == "invalid_identifier" else values[i],
            )
        assert {**{k: e[k] for k in expected}, "at": as_utc(e["at"])} == expected


async def test_chunk_reads_fetch_only_the_ciphertexts_of_revealable_fields(vault, monkeypatch):
    """Each chunk's read brings the sealed columns of the fields asked for and no others."""
    pop = await _population(vault)
    seen: list[set[str]] = []
    read_rows = vault.reads.rows

    async def spy(statement, params):
        rows = await read_rows(statement, params)
        seen.extend(set(dict(r._mapping if hasattr(r, "_mapping") else r)) for r in rows)
        return rows

    monkeypatch.setattr(vault.reads, "rows", spy)
    lines = await _lines(vault, "subject_id", pop["ids"][:3], fields=["name"])
    assert [set(line["fields"]) for line in lines] == [{"name"}] * 3
    assert len(seen) == 3
    assert all({c for c in cols if c.endswith("_ct")} == {"name_ct"} for cols in seen)


async def test_a_batch_leaves_the_key_cache_to_single_lookups(vault):
    """Keys unwrapped for a batch are not cached: 10,000 of them would push out the keys
    single lookups reuse."""
    pop = await _population(vault)
    for sid in pop["ids"]:
        vault.deks.forget(sid)
    lines = await _lines(vault, "subject_id", pop["ids"][:3])
    assert all("fields" in line for line in lines)
    assert len(vault.deks._cache) == 0


async def test_by_email_never_echoes_identifier_and_flags_malformed(vault):
    pop = await _population(vault)
    emails = [p["email"] for p in pop["people"]] + ["kein-at-zeichen", "fremd@example.org"]
    lines = await _lines(vault, "email", emails, fields=["phone"])
    text = json.dumps(lines) + json.dumps(await audit_rows(vault), default=str)
    assert "kein-at-zeichen" not in text and "fremd@example.org" not in text
    for p in pop["people"]:
        assert p["email"] not in text and p["name"] not in text  # only phones were asked for
    assert [line.get("reason") for line in lines][5:] == ["invalid_identifier", "subject_not_found"]
    assert lines[0]["fields"] == {"phone": pop["people"][0]["phone"]}


async def test_whole_batch_denied_is_audited_per_identifier(vault):
    pop = await _population(vault)
    with pytest.raises(LookupDenied) as info:
        await _lines(vault, "subject_id", pop["ids"], allowed=frozenset({"newsletter.email"}))
    assert info.value.reason == "purpose_not_allowed"
    events = await _lookup_events(vault)
    assert len(events) == len(pop["ids"])
    assert {e["reason"] for e in events} == {"purpose_not_allowed"}
    assert [e["subject_id"] for e in events] == pop["ids"]


async def test_limits(vault):
    with pytest.raises(InvalidInput):
        await _lines(vault, "subject_id", [UNKNOWN_ID] * (bulk.MAX_IDENTIFIERS + 1))
    with pytest.raises(InvalidInput):
        await _lines(vault, "subject_id", [])
    with pytest.raises(InvalidInput):
        await _lines(vault, "customer_number", ["1"])
    assert await _lookup_events(vault) == []


async def _audit_down(vault) -> None:
    await execute_ddl(vault, *((SQLITE_ON,) if is_sqlite(vault) else PG_ON))


async def _audit_up(vault) -> None:
    await execute_ddl(vault, *(SQLITE_OFF if is_sqlite(vault) else PG_OFF))


async def test_fails_closed_per_chunk(vault):
    """A group of chunks whose audit cannot be written is not revealed and ends the stream
    with an error line; only committed chunks were streamed and audited, and nothing was
    committed ahead of the lines that left."""
    pop = await _population(vault)
    # Chunks of three, two more than are ever prepared ahead: the first commit takes at
    # most `AHEAD` of them, so the outage always meets a later one.
    ids = pop["ids"][:3] * (bulk.AHEAD + 2)
    gen = bulk.resolve_batch(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=ids,
        chunk_size=3,
    )
    first = [json.loads(x) for x in (await gen.__anext__()).decode().splitlines()]
    # The first item is every chunk that was ready at the first commit: whole chunks, in order.
    assert [line["i"] for line in first] == list(range(len(first)))
    assert len(first) % 3 == 0 and len(first) <= bulk.AHEAD * 3 < len(ids)
    assert len(await _lookup_events(vault)) == len(first)  # prepared chunks are not committed
    await _audit_down(vault)
    try:
        rest = [json.loads(x) async for blob in gen for x in blob.decode().splitlines()]
    finally:
        await _audit_up(vault)
    assert rest == [
        {"error": "unavailable", "status": 503, "from_i": len(first), "detail": rest[0]["detail"]}
    ]
    for p in pop["people"]:
        assert p["phone"] not in json.dumps(rest)
    assert len(await _lookup_events(vault)) == len(first)  # only the committed chunks
    committed = len(first)

    # the first chunk failing is an ordinary error before anything is streamed
    await _audit_down(vault)
    try:
        with pytest.raises(Unavailable):
            await _lines(vault, "subject_id", ids)
    finally:
        await _audit_up(vault)
    assert len(await _lookup_events(vault)) == committed


def _counting_only(vault) -> None:
    """The dry run's counting without its group threshold (policy minimum 2, here 1), to
    compare its counts with the batch on a small population; the threshold and the
    suppression are tested in tests/api/subjects/test_dry_run_api.py."""
    vault.pressure_rules = dataclasses.replace(vault.pressure_rules, dry_run_min_audience=1)


async def _dry_summaries(vault) -> list[dict[str, Any]]:
    """The dry runs' summary events (the per-subject ones carry a subject id)."""
    return [
        e
        for e in await audit_rows(vault)
        if e["action"] == AuditAction.AUDIENCE_DRY_RUN and e["subject_id"] is None
    ]


async def test_dry_run_counts_match_batch_and_reveal_nothing(vault):
    _counting_only(vault)
    pop = await _population(vault)
    no_mail = await create_subject(vault, WRITER, {"phone": "+4930555123", "name": "Ohne Mail"})
    await record_basis(vault, WRITER, no_mail, "order.delivery", reference="order")
    values = [*pop["ids"], UNKNOWN_ID, "bad", pop["ids"][0], no_mail]
    lines = await _lines(vault, "subject_id", values)
    result = await dry_run.dry_run(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
    )
    channel = vault.catalogue.get("order.delivery").channel.value
    need = statements.CHANNEL_FIELD[channel]
    expected_reach = sum(1 for line in lines if need in line.get("fields", {}))
    assert result.total == len(values)
    assert result.reachable == expected_reach
    reasons: dict[str, int] = {}
    for line in lines:
        reason = line.get("reason") or (None if need in line["fields"] else "no_contact_data")
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    assert result.unreachable == reasons
    dry = await _dry_summaries(vault)
    assert len(dry) == 1
    detail = json.loads(dry[0]["detail"])
    assert detail["reachable"] == result.reachable and detail["total"] == len(values)
    for v in pop["ids"]:
        assert v not in dry[0]["detail"]
    with pytest.raises(InvalidInput):
        await dry_run.dry_run(
            vault,
            SHOP,
            ALLOWED,
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifiers=values,
            channel=next(
                c
                for c in ("email", "letter", "sms", "phone")
                if c not in {x.value for x in vault.catalogue.get("order.delivery").channels}
            ),
        )


async def test_dry_run_purpose_not_allowed(vault):
    with pytest.raises(LookupDenied):
        await dry_run.dry_run(
            vault,
            SHOP,
            frozenset(),
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifiers=[UNKNOWN_ID],
        )
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.AUDIENCE_DRY_RUN]
    assert [(e["decision"], e["reason"]) for e in events] == [("deny", "purpose_not_allowed")]


async def test_ten_thousand_streams_in_pieces_of_whole_chunks(vault):
    """A full batch streams in input order, each item whole chunks and never more than the
    chunks prepared ahead (memory stays bounded), and every line is audited."""
    if not is_sqlite(vault):
        pytest.skip("the size run is for the embedded database; PostgreSQL is in bench/")
    ids = await seed(vault, 2_000)
    values = (ids * 5)[: bulk.MAX_IDENTIFIERS]
    items = 0
    seen = 0
    async for blob in bulk.resolve_batch(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
    ):
        lines = blob.decode().splitlines()
        assert len(lines) % bulk.CHUNK == 0 and len(lines) <= bulk.AHEAD * bulk.CHUNK
        first = json.loads(lines[0])
        assert first["i"] == seen and "fields" in first
        seen += len(lines)
        items += 1
    assert seen == bulk.MAX_IDENTIFIERS and items >= bulk.MAX_IDENTIFIERS // (
        bulk.AHEAD * bulk.CHUNK
    )
    assert len(await _lookup_events(vault)) == bulk.MAX_IDENTIFIERS


async def _fill_basket(vault, subject_id: str) -> int:
    """Record contacts for a subject until its basket refuses one; returns how many fit."""
    from vault.errors import AccessDenied
    from vault.outreach.basket import ContactSpec, record_contact

    n = 0
    while True:
        try:
            await record_contact(
                vault,
                SHOP,
                ALLOWED,
                subject_id=subject_id,
                spec=ContactSpec(brand="tresor", channel="letter", type="service"),
                purpose_id="order.delivery",
            )
        except AccessDenied:
            return n
        n += 1


async def _contact_rows(vault) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from vault.storage.tables import contact_budgets, contacts

    async with vault.engine.connect() as conn:
        rows = [dict(r._mapping) for r in (await conn.execute(select(contacts))).all()]
        budgets = [dict(r._mapping) for r in (await conn.execute(select(contact_budgets))).all()]
    return rows + budgets


async def test_contact_reservation_per_line_one_per_subject_denied_when_full(vault):
    """Each revealed line reserves its contact, a full basket denies its line, and a subject
    named twice pays once: its second line is `duplicate_identifier` (also across chunks)."""
    from vault.outreach.basket import ContactSpec

    pop = await _population(vault)
    a, b, c = pop["ids"][:3]
    assert await _fill_basket(vault, a) > 0
    values = [a, b, c, b]
    out: list[dict[str, Any]] = []
    async for blob in bulk.resolve_batch(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
        contact=ContactSpec(brand="tresor"),
        chunk_size=2,
    ):
        out.extend(json.loads(x) for x in blob.decode().splitlines())
    assert [line["i"] for line in out] == [0, 1, 2, 3]
    assert (out[0]["reason"], out[0]["status"]) == ("contact_budget_exhausted", 403)
    assert "fields" in out[1] and "fields" in out[2]
    assert out[1]["contact"]["id"] != out[2]["contact"]["id"]
    assert out[1]["contact"]["used"] == out[1]["contact"]["points"]  # a fresh basket
    assert (out[3]["reason"], out[3]["status"]) == ("duplicate_identifier", 409)
    events = await _lookup_events(vault)
    assert len(events) == 4
    for e in events:
        detail = json.loads(e["detail"])
        line = out[detail["i"]]
        assert detail["contact"]["brand"] == "tresor"
        if "fields" in line:
            assert e["decision"] == "allow" and detail["contact"]["id"] == line["contact"]["id"]
        else:
            assert e["reason"] == line["reason"] and "id" not in detail["contact"]
    # the same decisions as the single lookup: a denied line reveals nothing
    assert not any(pop["people"][0]["phone"] in json.dumps(line) for line in (out[0], out[3]))


async def test_dry_run_with_contact_counts_basket_denials_and_reserves_nothing(vault):
    """With a contact the dry run rehearses the reservations: full baskets and duplicates
    count as unreachable, and no contact or budget row is left behind."""
    from vault.outreach.basket import ContactSpec

    _counting_only(vault)
    pop = await _population(vault)
    a, b, c = pop["ids"][:3]
    await _fill_basket(vault, a)
    before = await _contact_rows(vault)
    values = [a, b, c, b, pop["ids"][4]]
    result = await dry_run.dry_run(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
        contact=ContactSpec(brand="tresor"),
    )
    assert result.total == 5 and result.reachable == 2
    assert result.unreachable == {
        "contact_budget_exhausted": 1,
        "duplicate_identifier": 1,
        "no_consent": 1,
    }
    assert await _contact_rows(vault) == before
    dry = await _dry_summaries(vault)
    assert len(dry) == 1
    detail = json.loads(dry[0]["detail"])
    assert detail["contact"]["brand"] == "tresor" and detail["reachable"] == 2
    # The same batch then really reaches exactly those two.
    out: list[dict[str, Any]] = []
    async for blob in bulk.resolve_batch(
        vault,
        SHOP,
        ALLOWED,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=values,
        contact=ContactSpec(brand="tresor"),
    ):
        out.extend(json.loads(x) for x in blob.decode().splitlines())
    assert sum(1 for line in out if "fields" in line) == result.reachable
