"""The Art. 15 / Art. 20 export on both databases: every section, recipients from the audit
trail, sealed evidence, retained data after erasure, and the audited read."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.dsar import (
    DPO,
    NEWS_WITH_SECRETS,
    SELF,
    WEB_IP,
    WEB_UA,
    actions,
    contract,
    invoice,
    look,
    new_subject,
    newsletter,
    rows,
)
from tests.support.factories import WRITER
from vault import requests as dsar
from vault.audit import Actor
from vault.erasure import erase_subject
from vault.errors import NotFound
from vault.export import ART_15_INDEX, build_export
from vault.lookup import LookupDenied
from vault.storage.tables import audit_events

ART_15_LETTERS = ("a", "b", "c", "d", "e", "f", "g", "h")


async def _rich_subject(vault, clock):
    sid, data = await new_subject(vault, 1)
    news = await newsletter(vault, sid, NEWS_WITH_SECRETS)
    deal = await contract(vault, sid)
    clock.advance(timedelta(hours=2))
    await look(vault, "order.delivery", "subject_id", sid, Actor("client", "shop"))
    clock.advance(timedelta(hours=1))
    await look(vault, "newsletter.email", "email", data["email"], Actor("client", "newsletter-tool"))
    with pytest.raises(LookupDenied):
        await look(vault, "offers.sms", "subject_id", sid, Actor("client", "sms-gateway"))
    await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    return sid, data, news, deal


async def test_export_holds_every_item_of_article_15(vault, clock):
    """Purposes, categories, recipients, retention, rights, complaint, sources and automated
    decisions are all present and non-empty, and the index points at each."""
    sid, data, news, deal = await _rich_subject(vault, clock)
    doc = await build_export(vault, DPO, sid)
    index = doc["art15_index"]
    assert index == ART_15_INDEX
    assert [k[0] for k in index] == list(ART_15_LETTERS)
    for key in ("purposes", "categories", "recipients", "retention", "rights", "sources",
                "automated_decision_making"):
        assert doc[key], key
    assert any(r["right"] == "complaint" and r["article"] == "Art. 77" for r in doc["rights"])
    assert {r["right"] for r in doc["rights"]} >= {
        "access", "rectification", "erasure", "restriction", "portability", "objection",
        "withdraw_consent", "complaint",
    }
    for right in doc["rights"]:
        assert right["title"]["de"] and right["title"]["en"] and right["text"]["de"] and right["text"]["en"]
    assert doc["automated_decision_making"]["exists"] is False
    json.dumps(doc)  # machine-readable as it is (Art. 20)


async def test_export_contact_data_consents_evidence_and_history(vault, clock):
    """Contact data is decrypted; each consent carries its evidence (with the sealed IP and
    user agent) and its history."""
    sid, data, news, deal = await _rich_subject(vault, clock)
    doc = await build_export(vault, DPO, sid)
    contact = doc["contact_data"]
    assert contact["email"] == data["email"].lower()
    assert contact["name"] == data["name"]
    assert contact["postal_address"]["street"] == data["postal_address"]["street"]
    assert contact["external_ref"] == data["external_ref"]
    by_id = {c["id"]: c for c in doc["consents"]}
    assert by_id[news.id]["status"] == "granted"
    assert by_id[news.id]["evidence"]["ip"] == WEB_IP
    assert by_id[news.id]["evidence"]["user_agent"] == WEB_UA
    assert by_id[news.id]["evidence"]["touchpoint"] == "web.newsletter_form"
    assert [h["event"] for h in by_id[news.id]["history"]] == ["confirmation_requested", "confirmed"]
    assert by_id[deal.id]["basis"] == "contract" and by_id[deal.id]["reference"] == "order 4711"
    categories = {c["category"] for c in doc["categories"]}
    assert categories >= {"email", "phone", "name", "postal_address", "external_ref",
                          "consents", "consent_evidence", "access_log"}
    assert all(c["de"] and c["en"] for c in doc["categories"])


async def test_export_purposes_have_titles_basis_and_retention(vault, clock):
    """Each purpose the subject has a basis for comes with German and English titles, the
    lawful basis and the retention after the basis ends."""
    sid, *_ = await _rich_subject(vault, clock)
    doc = await build_export(vault, DPO, sid)
    purposes = {p["id"]: p for p in doc["purposes"]}
    assert set(purposes) == {"newsletter.email", "order.delivery"}
    news = purposes["newsletter.email"]
    assert news["title"] == {"de": "Newsletter per E-Mail", "en": "Newsletter by e-mail"}
    assert news["lawful_basis"] == "consent" and "Art. 6" in news["lawful_basis_title"]["en"]
    assert news["retention_after_end_days"] == 30 and "30" in news["retention"]["de"]
    assert purposes["order.delivery"]["lawful_basis"] == "contract"
    retention = {r["purpose"]: r for r in doc["retention"]["purposes"]}
    assert retention["order.delivery"]["retention_after_end_days"] == 90


async def test_export_recipients_are_the_allowed_reads_from_the_audit_trail(vault, clock):
    """Recipients list each client that read the data, with purpose, fields and time; denied
    attempts revealed nothing and are not recipients."""
    sid, *_ = await _rich_subject(vault, clock)
    doc = await build_export(vault, DPO, sid)
    recipients = doc["recipients"]
    assert [(r["client"], r["purpose"]) for r in recipients] == [
        ("shop", "order.delivery"),
        ("newsletter-tool", "newsletter.email"),
    ]
    assert set(recipients[0]["fields"]) == {"name", "phone", "postal_address"}
    assert recipients[0]["at"] == "2026-11-23T12:00:00+00:00"
    assert recipients[1]["at"] == "2026-11-23T13:00:00+00:00"
    assert "sms-gateway" not in json.dumps(doc)


async def test_export_sources_and_requests(vault, clock):
    """Sources name the touchpoint of each consent and the system that stored the data; the
    subject's requests are listed with their deadlines."""
    sid, *_ = await _rich_subject(vault, clock)
    doc = await build_export(vault, DPO, sid)
    kinds = {(s["kind"], s.get("touchpoint") or s.get("by")) for s in doc["sources"]}
    assert ("touchpoint", "web.newsletter_form") in kinds
    assert ("stored", WRITER.id) in kinds
    (request,) = doc["requests"]
    assert request["type"] == "access" and request["due_at"] == "2026-12-23T13:00:00+00:00"
    assert request["title"]["de"].startswith("Auskunft")


async def test_reading_the_export_is_audited_by_source(vault, clock):
    """A DPO's export read is `dpo:export:read`, the subject's own `subject:export:read`."""
    sid, *_ = await _rich_subject(vault, clock)
    await build_export(vault, DPO, sid)
    await build_export(vault, SELF, sid)
    events = await rows(vault, audit_events, audit_events.c.action.like("%:export:read"))
    assert [(e.action, e.actor_id) for e in events] == [
        ("dpo:export:read", "dpo-anna"),
        ("subject:export:read", "self-service"),
    ]
    assert events[0].fields == "email,phone,name,postal_address,external_ref"
    assert events[0].detail and "recipients" in events[0].detail


async def test_export_of_an_erased_subject_holds_only_the_retained_data(vault):
    """After erasure the export shows no contact data, the ended bases, and what was kept
    under Art. 17(3)(b) with its shredding date."""
    sid, data = await new_subject(vault, 2)
    await invoice(vault, sid)
    await newsletter(vault, sid, NEWS_WITH_SECRETS)
    await erase_subject(vault, DPO, sid)
    doc = await build_export(vault, DPO, sid)
    assert doc["subject"]["status"] == "erased" and doc["subject"]["erased_at"]
    assert doc["contact_data"] == {}
    assert all("ip" not in c["evidence"] for c in doc["consents"])
    assert {c["status"] for c in doc["consents"]} == {"withdrawn", "ended"}
    (kept,) = doc["retention"]["retained_after_erasure"]
    assert kept["fields"]["postal_address"] == data["postal_address"]
    assert kept["retain_until"].startswith("2036-11-23")
    assert {c["category"] for c in doc["categories"]} >= {"name", "postal_address"}
    assert "email" not in {c["category"] for c in doc["categories"]}


async def test_export_of_an_unknown_subject_is_not_found(vault):
    """No export, and no audit event, for a subject that does not exist."""
    with pytest.raises(NotFound):
        await build_export(vault, DPO, "00000000-0000-4000-8000-000000000000")
    assert "dpo:export:read" not in await actions(vault)
