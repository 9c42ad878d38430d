"""Consents scoped to brands by their evidence (issue 21 item 0): a consent given for one
brand does not cover a contact for another, in the single lookup, the batch, the dry run and
a recorded contact; the brands are checked when recorded and shown in the proof and the
export. Both databases."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER, person
from tests.support.privacy import audit_rows
from vault.access import bulk
from vault.access.lookup import LookupDenied, lookup
from vault.audit.events import Actor, AuditAction
from vault.bases.consent_proof import consent_proof
from vault.bases.consents import Evidence, record_basis
from vault.errors import InvalidInput
from vault.outreach.basket import ContactSpec, record_contact
from vault.rights.export import build_export
from vault.storage.tables import consents
from vault.subjects.decision import DenyReason
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-brands")
ALL = frozenset({"offers.sms", "order.delivery"})
DPO = Actor("dpo", "dpo-1")


def _evidence(*brands: str) -> Evidence:
    return Evidence(
        touchpoint="shop.counter",
        method="signature",
        notice_version="2026-10",
        language="de",
        explicit=True,
        brands=brands,
    )


async def _scoped_customer(vault, seed: int, *brands: str) -> str:
    """A customer whose SMS-offers consent was given for `brands` only."""
    sid = await create_subject(vault, WRITER, person(seed))
    await record_basis(vault, WRITER, sid, "offers.sms", evidence=_evidence(*brands))
    return sid


async def _announce(vault, sid: str, brand: str):
    return await lookup(
        vault, SHOP, ALL, purpose_id="offers.sms", identifier_kind="subject_id",
        identifier=sid, contact=ContactSpec(brand=brand),
    )  # fmt: skip


async def test_a_consent_for_one_brand_does_not_cover_another(vault):
    """The consent names tresor: a contact for tresor_finance is denied brand_not_covered
    (audited, nothing reserved), one for tresor passes and is charged."""
    sid = await _scoped_customer(vault, 2101, "tresor")
    with pytest.raises(LookupDenied) as info:
        await _announce(vault, sid, "tresor_finance")
    assert info.value.reason == DenyReason.BRAND_NOT_COVERED
    allowed = await _announce(vault, sid, "tresor")
    assert allowed.contact is not None and allowed.contact.used == 20
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
    assert [(e["decision"], e["reason"]) for e in events] == [
        ("deny", "brand_not_covered"),
        ("allow", None),
    ]


async def test_a_consent_without_brands_covers_every_brand(vault):
    """Consents recorded before (or without) brands keep covering every brand."""
    sid = await _scoped_customer(vault, 2102)
    got = await _announce(vault, sid, "tresor_finance")
    assert got.contact is not None


async def test_the_batch_decides_brands_like_the_single_lookup(vault):
    """Two customers, one scoped to tresor, one to tresor_finance, in one batch announcing
    tresor_finance: the first line is brand_not_covered, the second is served."""
    only_tresor = await _scoped_customer(vault, 2103, "tresor")
    only_finance = await _scoped_customer(vault, 2104, "tresor_finance")
    lines = []
    async for blob in bulk.resolve_batch(
        vault, SHOP, ALL, purpose_id="offers.sms", identifier_kind="subject_id",
        identifiers=[only_tresor, only_finance], fields=None,
        contact=ContactSpec(brand="tresor_finance"),
    ):  # fmt: skip
        lines.extend(json.loads(x) for x in blob.decode().splitlines())
    assert [line.get("reason") for line in lines] == ["brand_not_covered", None]


async def test_a_recorded_contact_for_another_brand_is_refused(vault):
    """POST /v1/contacts' domain function: an outbound SMS for a brand the consent does not
    name is refused; an inbound one (the customer wrote to that brand) is recorded."""
    sid = await _scoped_customer(vault, 2105, "tresor")
    with pytest.raises(LookupDenied) as info:
        await record_contact(
            vault, SHOP, ALL, subject_id=sid, purpose_id="offers.sms",
            spec=ContactSpec(brand="tresor_finance"),
        )  # fmt: skip
    assert info.value.reason == DenyReason.BRAND_NOT_COVERED
    inbound = await record_contact(
        vault, SHOP, ALL, subject_id=sid, purpose_id="offers.sms",
        spec=ContactSpec(brand="tresor_finance", inbound=True),
    )  # fmt: skip
    assert inbound.points == 0


@pytest.mark.parametrize(
    ("brands", "why"),
    [
        (("nobody",), "not a brand of the rules"),
        (("tresor", "tresor"), "named twice"),
    ],
)
async def test_unknown_or_repeated_brands_are_refused_and_nothing_is_stored(vault, brands, why):
    """Brands must be the rules' own, each once: otherwise InvalidInput on
    `evidence.brands` and no consent row."""
    sid = await create_subject(vault, WRITER, person(2106))
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "offers.sms", evidence=_evidence(*brands))
    assert "evidence.brands" in info.value.errors, why
    async with vault.engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(consents))).scalar_one()
    assert count == 0


async def test_a_consent_cannot_widen_a_scoped_purpose(vault, monkeypatch):
    """offers.sms scoped to tresor in the catalogue: a consent naming tresor_finance is
    refused (a consent narrows what the purpose covers, never widens it)."""
    scoped = dataclasses.replace(vault.catalogue.purposes["offers.sms"], brands=("tresor",))
    monkeypatch.setitem(vault.catalogue.purposes, "offers.sms", scoped)
    sid = await create_subject(vault, WRITER, person(2107))
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "offers.sms", evidence=_evidence("tresor_finance"))
    assert "evidence.brands" in info.value.errors


async def test_the_proof_and_the_export_name_the_brands(vault):
    """The consent proof's evidence and the customer's export list the brands."""
    sid = await _scoped_customer(vault, 2108, "tresor")
    async with vault.engine.connect() as conn:
        consent_id = (await conn.execute(select(consents.c.id))).scalar_one()
    proof = await consent_proof(vault, DPO, consent_id)
    assert proof.evidence.brands == ("tresor",)
    exported = await build_export(vault, DPO, sid)
    items = json.dumps(exported, default=str)
    assert '"brands": ["tresor"]' in items
