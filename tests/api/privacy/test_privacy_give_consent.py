"""Giving a consent in the privacy centre (both databases): any consent-based purpose, for a
chosen duration up to its default, with the centre as evidence; double opt-in where the
purpose needs it; bad input changes nothing."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import consent_statuses
from tests.support.self_service import Page, mails, page_sign_in, seed_subject
from vault.audit.events import AuditAction
from vault.clock import as_utc
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consents


def _offers(html: str) -> dict[str, list[str]]:
    """The offered purposes and the durations (days) each offers."""
    out = {}
    for section in re.findall(
        r'<section aria-labelledby="give-\d+" data-offer=.*?</section>', html, re.S
    ):
        purpose = re.search(r'data-offer="([^"]+)"', section).group(1)
        out[purpose] = re.findall(r'<option value="(\d+)"', section)
    return out


async def _give(http, purpose: str, days: str):
    page = Page((await http.get("/privacy?lang=en")).text)
    return await http.post(
        "/privacy/consents?lang=en",
        data={"_csrf_token": page.csrf(), "purpose": purpose, "days": days},
    )


async def _consent(vault, sid: str, purpose: str):
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(
                select(consents)
                .where(consents.c.subject_id == sid)
                .where(consents.c.purpose == purpose)
                .order_by(consents.c.created_at.desc())
            )
        ).first()


async def test_the_overview_offers_each_consent_purpose_not_in_force_up_to_its_default(vault):
    """Offered: the catalogue's consent purposes without a consent in force (the seeded SMS
    consent is not), each with durations up to its default; no contract purpose."""
    _, p = await seed_subject(vault, 800)
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        offers = _offers((await http.get("/privacy?lang=en")).text)
    assert set(offers) == {
        "newsletter.email",
        "offers.email",
        "offers.phone",
        "offers.visit",
        "offers.social",
    }
    assert offers["offers.phone"] == ["30", "90", "180", "365"]
    assert offers["newsletter.email"][-1] == "730"


async def test_a_consent_given_here_lets_the_lookup_through_for_the_chosen_time(vault, clock):
    """offers.phone for 90 days: granted at once, ends in 90 days, evidence
    web.privacy_centre / web_form, audited as the subject's grant; a lookup is allowed."""
    sid, p = await seed_subject(vault, 801)
    caller = await client_key(vault, "callcentre", "lookup", ["offers.phone"])
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        r = await _give(http, "offers.phone", "90")
        assert r.status_code == 303 and "done=consented" in r.headers["location"], r.text
        page = (await http.get(r.headers["location"])).text
        lookup = {"purpose": "offers.phone", "subject_id": sid, "contact": {"brand": "tresor"}}
        allowed = await http.post("/v1/lookup", json=lookup, headers=bearer(caller))
    assert "Thank you, your consent applies" in page and "offers.phone" not in _offers(page)
    row = await _consent(vault, sid, "offers.phone")
    assert row.status == "granted" and row.touchpoint == "web.privacy_centre"
    assert row.method == "web_form" and row.language == "en"
    assert as_utc(row.expires_at) == clock.now() + timedelta(days=90)
    assert allowed.status_code == 200, allowed.text
    async with vault.engine.connect() as conn:
        grant = (
            await conn.execute(
                select(audit_events.c.actor_type).where(
                    audit_events.c.action == str(AuditAction.CONSENT_GRANT),
                    audit_events.c.consent_id == row.id,
                )
            )
        ).scalar_one()
    assert grant == "subject"


async def test_a_double_opt_in_purpose_waits_for_the_mailed_confirmation(vault):
    """newsletter.email: pending until confirmed, a confirmation mail goes to the stored
    address, the page says so, and the lookup is refused meanwhile."""
    sid, p = await seed_subject(vault, 802)
    news = await client_key(vault, "newsletter", "lookup", ["newsletter.email"])
    before = len(mails(vault.settings.outbox_dir))
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        signed_in = len(mails(vault.settings.outbox_dir))
        r = await _give(http, "newsletter.email", "365")
        assert r.status_code == 303 and "done=confirm_sent" in r.headers["location"], r.text
        page = (await http.get(r.headers["location"])).text
        lookup = {"purpose": "newsletter.email", "subject_id": sid, "contact": {"brand": "tresor"}}
        refused = await http.post("/v1/lookup", json=lookup, headers=bearer(news))
    assert signed_in > before
    sent = mails(vault.settings.outbox_dir)[signed_in:]
    assert len(sent) == 1 and sent[0]["To"] == p["email"]
    assert "please confirm your consent" in page
    row = await _consent(vault, sid, "newsletter.email")
    assert row.status == "pending_confirmation" and row.method == "double_opt_in"
    assert refused.status_code == 403, refused.text


async def test_bad_choices_are_refused_and_change_nothing(vault):
    """A duration beyond the purpose's default, a contract purpose, an unknown purpose and
    a non-number duration: each refused with an error page, no consent changed."""
    sid, p = await seed_subject(vault, 803)
    before = await consent_statuses(vault)
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        answers = [
            await _give(http, "offers.phone", "730"),
            await _give(http, "order.delivery", "30"),
            await _give(http, "no.such", "30"),
            await _give(http, "offers.phone", "lots"),
        ]
    for r in answers:
        assert 400 <= r.status_code < 500 and "text/html" in r.headers["content-type"], r.text
    assert await consent_statuses(vault) == before


async def test_giving_needs_a_session_and_the_csrf_token(vault):
    """Without a session the form leads to the sign-in; without the token it is refused."""
    _, p = await seed_subject(vault, 804)
    before = await consent_statuses(vault)
    async with api(vault) as http:
        page = Page((await http.get("/privacy")).text)
        anonymous = await http.post(
            "/privacy/consents",
            data={"_csrf_token": page.csrf(), "purpose": "offers.phone", "days": "30"},
        )
        await page_sign_in(http, vault, p["email"], lang="en")
        forged = await http.post(
            "/privacy/consents", data={"purpose": "offers.phone", "days": "30"}
        )
    assert anonymous.status_code == 303 and "done=expired" in anonymous.headers["location"]
    assert forged.status_code == 403
    assert await consent_statuses(vault) == before


async def test_a_field_left_out_here_is_not_revealed_by_the_lookup(vault):
    """offers.phone without the name: the overview says so, a lookup for the phone alone
    passes, one that would reveal the name is denied field_not_covered."""
    sid, p = await seed_subject(vault, 805)
    caller = await client_key(vault, "callcentre", "lookup", ["offers.phone"])
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        page = Page((await http.get("/privacy?lang=en")).text)
        r = await http.post(
            "/privacy/consents?lang=en",
            data={
                "_csrf_token": page.csrf(),
                "purpose": "offers.phone",
                "days": "365",
                "leave_out": "name",
            },
        )
        assert r.status_code == 303, r.text
        overview = (await http.get("/privacy?lang=en")).text
        base = {"purpose": "offers.phone", "subject_id": sid, "contact": {"brand": "tresor"}}
        phone = await http.post(
            "/v1/lookup", json={**base, "fields": ["phone"]}, headers=bearer(caller)
        )
        name = await http.post(
            "/v1/lookup", json={**base, "fields": ["name"]}, headers=bearer(caller)
        )
        default = await http.post("/v1/lookup", json=base, headers=bearer(caller))
    assert 'data-excluded="name">without: Name<' in overview
    assert phone.status_code == 200 and phone.json()["fields"] == {"phone": p["phone"]}
    for denied in (name, default):
        assert denied.status_code == 403 and denied.json()["reason"] == "field_not_covered"
    assert (await _consent(vault, sid, "offers.phone")).excluded_fields == "name"
