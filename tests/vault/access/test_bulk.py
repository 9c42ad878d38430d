"""Bulk resolution on both databases: one audited event per line, input order, mixed
outcomes, no identifier echoed, limits, fail closed per chunk (the dry run:
test_dry_run.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.seed import seed
from tests.support.batches import (
    ALLOWED,
    SHOP,
    UNKNOWN_ID,
    batch_lines,
    fill_basket,
    population,
)
from tests.support.faults import PG_OFF, PG_ON, SQLITE_OFF, SQLITE_ON
from tests.support.privacy import audit_rows, execute_ddl, is_sqlite
from vault.access import bulk
from vault.access.lookup import LookupDenied
from vault.audit import events as audit
from vault.audit.events import AuditAction, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput, Unavailable


async def _lookup_events(vault) -> list[dict[str, Any]]:
    return [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]


async def test_mixed_batch_in_order_each_line_audited(vault):
    pop = await population(vault)
    ids = pop["ids"]
    values = [ids[0], UNKNOWN_ID, ids[4], "not-a-uuid", ids[1], ids[3], ids[0], ids[2]]
    lines = await batch_lines(vault, "subject_id", values, chunk_size=3)
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
    pop = await population(vault)
    ids = pop["ids"]
    values = [ids[0], UNKNOWN_ID, ids[4], "not-a-uuid", ids[3], ids[1]]
    asked = ["phone", "name"]
    lines = await batch_lines(vault, "subject_id", values, fields=asked, chunk_size=2)
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
    pop = await population(vault)
    seen: list[set[str]] = []
    read_rows = vault.reads.rows

    async def spy(statement, params):
        rows = await read_rows(statement, params)
        seen.extend(set(dict(r._mapping if hasattr(r, "_mapping") else r)) for r in rows)
        return rows

    monkeypatch.setattr(vault.reads, "rows", spy)
    lines = await batch_lines(vault, "subject_id", pop["ids"][:3], fields=["name"])
    assert [set(line["fields"]) for line in lines] == [{"name"}] * 3
    assert len(seen) == 3
    assert all({c for c in cols if c.endswith("_ct")} == {"name_ct"} for cols in seen)


async def test_a_batch_leaves_the_key_cache_to_single_lookups(vault):
    """Keys unwrapped for a batch are not cached: 10,000 of them would push out the keys
    single lookups reuse."""
    pop = await population(vault)
    for sid in pop["ids"]:
        vault.deks.forget(sid)
    lines = await batch_lines(vault, "subject_id", pop["ids"][:3])
    assert all("fields" in line for line in lines)
    assert len(vault.deks._cache) == 0


async def test_by_email_never_echoes_identifier_and_flags_malformed(vault):
    pop = await population(vault)
    emails = [p["email"] for p in pop["people"]] + ["kein-at-zeichen", "fremd@example.org"]
    lines = await batch_lines(vault, "email", emails, fields=["phone"])
    text = json.dumps(lines) + json.dumps(await audit_rows(vault), default=str)
    assert "kein-at-zeichen" not in text and "fremd@example.org" not in text
    for p in pop["people"]:
        assert p["email"] not in text and p["name"] not in text  # only phones were asked for
    assert [line.get("reason") for line in lines][5:] == ["invalid_identifier", "subject_not_found"]
    assert lines[0]["fields"] == {"phone": pop["people"][0]["phone"]}


async def test_whole_batch_denied_is_audited_per_identifier(vault):
    pop = await population(vault)
    with pytest.raises(LookupDenied) as info:
        await batch_lines(vault, "subject_id", pop["ids"], allowed=frozenset({"newsletter.email"}))
    assert info.value.reason == "purpose_not_allowed"
    events = await _lookup_events(vault)
    assert len(events) == len(pop["ids"])
    assert {e["reason"] for e in events} == {"purpose_not_allowed"}
    assert [e["subject_id"] for e in events] == pop["ids"]


async def test_limits(vault):
    with pytest.raises(InvalidInput):
        await batch_lines(vault, "subject_id", [UNKNOWN_ID] * (bulk.MAX_IDENTIFIERS + 1))
    with pytest.raises(InvalidInput):
        await batch_lines(vault, "subject_id", [])
    with pytest.raises(InvalidInput):
        await batch_lines(vault, "customer_number", ["1"])
    assert await _lookup_events(vault) == []


async def _audit_down(vault) -> None:
    await execute_ddl(vault, *((SQLITE_ON,) if is_sqlite(vault) else PG_ON))


async def _audit_up(vault) -> None:
    await execute_ddl(vault, *(SQLITE_OFF if is_sqlite(vault) else PG_OFF))


async def test_fails_closed_per_chunk(vault):
    """A group of chunks whose audit cannot be written is not revealed and ends the stream
    with an error line; only committed chunks were streamed and audited, and nothing was
    committed ahead of the lines that left."""
    pop = await population(vault)
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
            await batch_lines(vault, "subject_id", ids)
    finally:
        await _audit_up(vault)
    assert len(await _lookup_events(vault)) == committed


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


async def test_contact_reservation_per_line_one_per_subject_denied_when_full(vault):
    """Each revealed line reserves its contact, a full basket denies its line, and a subject
    named twice pays once: its second line is `duplicate_identifier` (also across chunks)."""
    from vault.outreach.basket import ContactSpec

    pop = await population(vault)
    a, b, c = pop["ids"][:3]
    assert await fill_basket(vault, a) > 0
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
