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
    erase,
    invoice,
    look,
    new_subject,
    newsletter,
    rows,
)
from tests.support.factories import WRITER
from tests.support.privacy import CANARY_AGENT, CANARY_IP
from vault.access.lookup import LookupDenied
from vault.audit.events import Actor
from vault.bases.consents import Evidence
from vault.errors import NotFound
from vault.outreach import followup_changes, followups, preference_changes
from vault.rights import requests as dsar
from vault.rights.export import ART_15_INDEX, build_export
from vault.storage.audit_tables import audit_events

ART_15_LETTERS = ("a", "b", "c", "d", "e", "f", "g", "h")


async def _rich_subject(vault, clock):
    sid, data = await new_subject(vault, 1)
    news = await newsletter(vault, sid, NEWS_WITH_SECRETS)
    deal = await contract(vault, sid)
    clock.advance(timedelta(hours=2))
    await look(vault, "order.delivery", "subject_id", sid, Actor("client", "shop"))
    clock.advance(timedelta(hours=1))
    await look(
        vault, "newsletter.email", "email", data["email"], Actor("client", "newsletter-tool")
    )
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
    for key in (
        "purposes",
        "categories",
        "recipients",
        "retention",
        "rights",
        "sources",
        "automated_decision_making",
    ):
        assert doc[key], key
    assert any(r["right"] == "complaint" and r["article"] == "Art. 77" for r in doc["rights"])
    assert {r["right"] for r in doc["rights"]} >= {
        "access",
        "rectification",
        "erasure",
        "restriction",
        "portability",
        "objection",
        "withdraw_consent",
        "complaint",
    }
    for right in doc["rights"]:
        assert (
            right["title"]["de"]
            and right["title"]["en"]
            and right["text"]["de"]
            and right["text"]["en"]
        )
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
    assert [h["event"] for h in by_id[news.id]["history"]] == [
        "confirmation_requested",
        "confirmed",
    ]
    assert by_id[deal.id]["basis"] == "contract" and by_id[deal.id]["reference"] == "order 4711"
    categories = {c["category"] for c in doc["categories"]}
    assert categories >= {
        "email",
        "phone",
        "name",
        "postal_address",
        "external_ref",
        "consents",
        "consent_evidence",
        "access_log",
    }
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
    await erase(vault, DPO, sid)
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


# ---------------------------------------------------------------- preferences and follow-ups

FOLLOWUP_PURPOSES = frozenset({"account.service", "order.delivery"})
QUIET = {"phone": {"start": "21:00", "end": "07:30", "days": ["sun"]}}


async def _preferences_and_followups(vault, clock, sid, zone):
    """A client-made change (with sealed IP and user agent), then a self-service one; an open
    follow-up and a cancelled one. Returns the two follow-ups."""
    from vault.rights.selfservice import subject_actor

    raw = {
        "timezone": zone,
        "preferred_channels": {"commercial": "letter"},
        "quiet": QUIET,
        "monthly_cap_points": 7.5,
    }
    await preference_changes.set_preferences(
        vault,
        WRITER,
        sid,
        raw,
        source="client",
        evidence=Evidence(
            "hotline.inbound",
            "recorded_call",
            "prefs-2026-11",
            "de",
            ip=CANARY_IP,
            user_agent=CANARY_AGENT,
        ),
    )
    clock.advance(timedelta(minutes=30))
    await preference_changes.set_preferences(
        vault,
        subject_actor(),
        sid,
        {**raw, "monthly_cap_points": 4},
        source="self_service",
        evidence=preference_changes.self_service_evidence("en", ip=CANARY_IP, ua=CANARY_AGENT),
    )
    made = []
    for days, purpose in ((2, "account.service"), (3, "order.delivery")):
        start = clock.now() + timedelta(days=days)
        made.append(
            await followups.create(
                vault,
                WRITER,
                FOLLOWUP_PURPOSES,
                subject_id=sid,
                purpose=purpose,
                brand="tresor",
                touchpoint="hotline.inbound",
                note="contract_question",
                due_from=start,
                due_until=start + timedelta(hours=3),
            )
        )
    await followup_changes.cancel_by_subject(vault, SELF, sid, made[1].id)
    return made


async def test_export_holds_preferences_their_history_and_followups(vault, clock):
    """The export shows the current preferences, each change with time, source, touchpoint and
    the changed parts (never the sealed IP or user agent), and every follow-up with window,
    channel, purpose, touchpoint and the status in force; nothing of another subject's."""
    sid, _ = await new_subject(vault, 21)
    other, _ = await new_subject(vault, 22)
    open_one, cancelled = await _preferences_and_followups(vault, clock, sid, "Pacific/Chatham")
    theirs = await _preferences_and_followups(vault, clock, other, "America/Halifax")
    doc = await build_export(vault, DPO, sid)

    assert doc["contact_preferences"] == {
        "timezone": "Pacific/Chatham",
        "preferred_channels": {"commercial": "letter"},
        "quiet": QUIET,
        "monthly_cap_points": 4.0,
        "version": 2,
        "updated_at": "2026-11-23T10:30:00+00:00",
    }
    first, second = doc["contact_preference_history"]
    assert (first["version"], first["source"]) == (1, "client")
    assert first["at"] == "2026-11-23T10:00:00+00:00"
    assert first["touchpoint"] == "hotline.inbound" and first["method"] == "recorded_call"
    assert first["changed"] == ["timezone", "preferred_channels", "quiet", "monthly_cap"]
    assert first["preferences"]["monthly_cap_points"] == 7.5
    assert (second["version"], second["source"], second["touchpoint"]) == (
        2,
        "self_service",
        "web.privacy_centre",
    )
    assert second["changed"] == ["monthly_cap"]

    got = {f["id"]: f for f in doc["followups"]}
    assert list(got) == [open_one.id, cancelled.id]
    assert got[open_one.id]["status"] == "open" and got[cancelled.id]["status"] == "cancelled"
    assert got[open_one.id]["due_from"] == "2026-11-25T10:30:00+00:00"
    assert got[open_one.id]["due_until"] == "2026-11-25T13:30:00+00:00"
    assert got[open_one.id]["channel"] == "email"
    assert got[open_one.id]["purpose"] == "account.service"
    assert got[open_one.id]["touchpoint"] == "hotline.inbound"
    assert got[open_one.id]["note"] == "contract_question"
    assert got[open_one.id]["purpose_title"]["de"] and got[open_one.id]["purpose_title"]["en"]
    assert {"contact_preferences", "followups"} <= {c["category"] for c in doc["categories"]}

    text = json.dumps(doc)
    assert CANARY_IP not in text and CANARY_AGENT not in text and "evidence_ct" not in text
    assert "America/Halifax" not in text and other not in text
    assert not any(f.id in text for f in theirs)

    clock.advance(timedelta(days=3))  # the open one's window has passed unused
    later = await build_export(vault, DPO, sid)
    assert [f["status"] for f in later["followups"]] == ["missed", "cancelled"]
    (event, _) = await rows(
        vault, audit_events, audit_events.c.action == "dpo:export:read", order=audit_events.c.seq
    )
    assert json.loads(event.detail)["preference_changes"] == 2
    assert json.loads(event.detail)["followups"] == 2


async def test_export_without_preferences_or_followups_has_empty_sections(vault, clock):
    """A subject who never set preferences nor agreed a follow-up gets empty sections and no
    such category, even while another subject has both."""
    sid, _ = await new_subject(vault, 23)
    other, _ = await new_subject(vault, 24)
    await _preferences_and_followups(vault, clock, other, "America/Halifax")
    doc = await build_export(vault, DPO, sid)
    assert doc["contact_preferences"] == {}
    assert doc["contact_preference_history"] == [] and doc["followups"] == []
    assert not {"contact_preferences", "followups"} & {c["category"] for c in doc["categories"]}
    assert "America/Halifax" not in json.dumps(doc) and other not in json.dumps(doc)


async def test_readable_export_shows_preferences_and_followups_in_german_and_english(vault, clock):
    """The HTML rendering has a preferences and a follow-up section with German and English
    labels and the values, and says plainly when there are none."""
    from api.export_view import render_export_html

    sid, _ = await new_subject(vault, 25)
    bare, _ = await new_subject(vault, 26)
    await _preferences_and_followups(vault, clock, sid, "Pacific/Chatham")
    doc = await build_export(vault, DPO, sid)
    rules = vault.pressure_rules
    de, en = render_export_html(doc, "de", rules), render_export_html(doc, "en", rules)
    for html in (de, en):
        assert "Pacific/Chatham" in html and "21:00–07:30" in html
        assert "2026-11-25 10:30 UTC – 2026-11-25 13:30 UTC" in html
    assert "Ihre Kontaktwünsche" in de and "Vereinbarte Rückmeldungen" in de
    assert "Angebote: Brief" in de and "4,0 Punkte im Monat" in de and "abgesagt" in de
    assert "Frage zum Vertrag" in de and "von Ihnen im Datenschutz-Center" in de
    assert "Your contact preferences" in en and "Agreed follow-ups" in en
    assert "Offers: Letter" in en and "4.0 points a month" in en and "cancelled" in en
    assert "question about the contract" in en and "by you in the privacy centre" in en
    empty = render_export_html(await build_export(vault, DPO, bare), "en", rules)
    assert "You have not set any contact preferences." in empty
    assert "No follow-ups are agreed." in empty


async def test_export_sources_leave_out_a_refused_rectification(vault, clock):
    """A rectification refused over a field that did not open (its denial is on record) is
    not a source of the data: once the field is whole again, the export names the system
    that stored the data and no "rectified"."""
    from sqlalchemy import select, update

    from vault.errors import IntegrityFailure
    from vault.storage.tables import subjects
    from vault.subjects.store import rectify_contact

    sid, *_ = await _rich_subject(vault, clock)
    async with vault.engine.begin() as conn:
        good = await conn.execute(select(subjects.c.name_ct).where(subjects.c.id == sid))
        good = good.scalar_one()
        bad = good[:-1] + bytes([good[-1] ^ 1])
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(name_ct=bad))
    with pytest.raises(IntegrityFailure):
        await rectify_contact(vault, WRITER, sid, {"phone": "+49305555555"})
    async with vault.engine.begin() as conn:
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(name_ct=good))
    doc = await build_export(vault, DPO, sid)
    kinds = [s["kind"] for s in doc["sources"] if "kind" in s]
    assert "rectified" not in kinds and "stored" in kinds


async def test_export_names_the_controller_its_dpo_and_each_purposes_transfers(vault, clock):
    """The customer learns whom to ask (controller, DPO) and where a purpose's data goes
    outside the EEA with its safeguard (Art. 15(2)); a purpose without a transfer lists none."""
    sid, *_ = await _rich_subject(vault, clock)
    doc = await build_export(vault, DPO, sid)
    assert doc["controller"]["name"] == vault.controller.controller.name
    assert doc["controller"]["dpo"]["email"] == vault.controller.dpo.email
    purposes = {p["id"]: p for p in doc["purposes"]}
    (transfer,) = purposes["newsletter.email"]["third_country_transfers"]
    assert transfer["country"] == "US" and transfer["safeguard"] == "adequacy_decision"
    assert purposes["order.delivery"]["third_country_transfers"] == []
