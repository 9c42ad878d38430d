"""The record of processing activities (Art. 30), generated from catalogue, clients and audit."""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.support.factories import ADMIN, WRITER, client_key, person
from vault.access.lookup import LookupDenied, lookup
from vault.admin.clients import revoke_client
from vault.audit.events import Actor, AuditAction
from vault.audit.ropa import SECURITY_MEASURES, record_of_processing
from vault.bases.consents import record_basis
from vault.storage.audit_tables import audit_events
from vault.subjects.store import create_subject

DPO = Actor("dpo", "datenschutz", "req-dpo")


async def test_every_purpose_is_an_activity_with_its_basis_data_and_retention(vault):
    """Each catalogue purpose appears once with names, basis, fields, subjects and retention."""
    record = await record_of_processing(vault, DPO)
    assert record.catalogue_version == vault.catalogue.version
    assert [a.purpose for a in record.activities] == sorted(vault.catalogue.purposes)
    by = {a.purpose: a for a in record.activities}
    news = by["newsletter.email"]
    assert news.title_de == "Newsletter per E-Mail" and news.title_en == "Newsletter by e-mail"
    assert (news.lawful_basis, news.legal_reference) == ("consent", "Art. 6(1)(a) GDPR")
    assert news.data_categories == ["email", "name"] and news.subject_categories == ["customers"]
    assert (news.retention_after_end_days, news.default_consent_days) == (30, 730)
    assert news.double_opt_in and news.data_use == "marketing.communications.email"
    invoice = by["invoice.postal"]
    assert invoice.legal_reference == "Art. 6(1)(c) GDPR"
    assert invoice.retention_after_end_days == 3653 and invoice.default_consent_days is None
    assert by["order.delivery"].legal_reference == "Art. 6(1)(b) GDPR"
    assert by["incident.notice"].legal_reference == "Art. 6(1)(f) GDPR"


async def test_security_measures_name_the_controls_the_vault_enforces(vault):
    """The TOMs cover encryption, blind indexes, HMAC keys, the sealed audit chain and roles."""
    record = await record_of_processing(vault, DPO)
    assert record.security_measures == SECURITY_MEASURES
    text = " ".join(m.en for m in record.security_measures)
    for phrase in ("AES-256-GCM", "blind index", "HMAC-SHA256", "Ed25519", "fail closed", "roles"):
        assert phrase in text
    assert all(m.de and m.en for m in record.security_measures)


async def test_recipients_are_allowed_clients_and_clients_seen_reading(vault):
    """Recipients list active clients allowed the purpose; observed ones come from allowed reads."""
    shop_key = await client_key(vault, "shop", "lookup", ["order.delivery", "offers.sms"])
    await client_key(vault, "carrier", "lookup", ["order.delivery"])
    await client_key(vault, "old-crm", "lookup", ["order.delivery"])
    await revoke_client(vault, ADMIN, "old-crm")
    assert shop_key
    sid = await create_subject(vault, WRITER, person(1))
    await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 1")
    shop = Actor("client", "shop")
    for _ in range(2):
        await lookup(
            vault,
            shop,
            frozenset({"order.delivery"}),
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifier=sid,
        )
    try:
        await lookup(
            vault,
            Actor("client", "billing"),
            frozenset({"offers.sms"}),
            purpose_id="offers.sms",
            identifier_kind="subject_id",
            identifier=sid,
        )
    except LookupDenied:
        pass
    record = await record_of_processing(vault, DPO)
    by = {a.purpose: a for a in record.activities}
    assert [(r.client, r.role) for r in by["order.delivery"].recipients] == [
        ("carrier", "lookup"),
        ("shop", "lookup"),
    ]
    assert [(r.client, r.role) for r in by["offers.sms"].recipients] == [("shop", "lookup")]
    observed = by["order.delivery"].observed_recipients
    assert [(o.client, o.reads) for o in observed] == [("shop", 2)]
    assert observed[0].last_read_at == vault.clock.now()
    assert by["offers.sms"].observed_recipients == []  # a denied read is no disclosure


async def test_reading_the_record_is_audited(vault):
    """Each read writes dpo:ropa:read by the DPO."""
    await record_of_processing(vault, DPO)
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_events).where(audit_events.c.action == str(AuditAction.DPO_ROPA_READ))
            )
        ).all()
    assert len(rows) == 1 and (rows[0].actor_type, rows[0].actor_id) == ("dpo", "datenschutz")
    assert json.loads(rows[0].detail) == {"catalogue_version": vault.catalogue.version}


async def test_the_record_names_the_controller_its_dpo_and_third_country_transfers(vault):
    """Art. 30(1)(a) and (e): the controller and DPO of policies/controller.toml head the
    record, and the newsletter's transfer (country, recipient, safeguard) is on its activity
    while a purpose without one has none."""
    record = await record_of_processing(vault, DPO)
    assert record.controller == vault.controller.controller and record.controller.address
    assert record.dpo == vault.controller.dpo and record.dpo.email
    by = {a.purpose: a for a in record.activities}
    (transfer,) = by["newsletter.email"].third_country_transfers
    assert (transfer.country, transfer.safeguard) == ("US", "adequacy_decision")
    assert by["order.delivery"].third_country_transfers == []
