"""Shared by the bulk and dry-run tests: the client, a small population, a batch as lines,
and the contact rows a basket leaves."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from tests.support.factories import WRITER, person
from vault.access import bulk
from vault.audit.events import Actor
from vault.bases.consents import record_basis, withdraw
from vault.errors import AccessDenied
from vault.outreach.basket import ContactSpec, record_contact
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-batch-1")
ALLOWED = frozenset({"order.delivery", "newsletter.email"})
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def batch_lines(
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


async def population(vault) -> dict[str, Any]:
    """Three customers with a delivery contract, one whose contract was ended (denied),
    one without any basis (no_consent)."""
    people = [person(700 + n) for n in range(5)]
    ids = [await create_subject(vault, WRITER, p) for p in people]
    for sid in ids[:3]:
        await record_basis(vault, WRITER, sid, "order.delivery", reference="order")
    ended = (await record_basis(vault, WRITER, ids[3], "order.delivery", reference="x")).id
    await withdraw(vault, WRITER, ids[3], ended)  # ends the contract basis
    return {"people": people, "ids": ids, "ended": ended}


async def fill_basket(vault, subject_id: str) -> int:
    """Record contacts for a subject until its basket refuses one; returns how many fit."""
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


async def contact_rows(vault) -> list[dict[str, Any]]:
    async with vault.engine.connect() as conn:
        rows = [dict(r._mapping) for r in (await conn.execute(select(contacts))).all()]
        budgets = [dict(r._mapping) for r in (await conn.execute(select(contact_budgets))).all()]
    return rows + budgets
