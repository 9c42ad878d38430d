"""The consent routes (api/bases/consents.py) and the mailed confirmation link, end to end
through HTTP, on both databases."""

from __future__ import annotations

from datetime import timedelta

from tests.support.factories import (
    NEWSLETTER_EVIDENCE,
    api,
    bearer,
    client_key,
    outbox_links,
    person,
)


async def test_double_opt_in_through_the_outbox_then_withdrawal(vault, clock):
    """Newsletter consent is pending until the mailed link is used, and withdrawal is immediate."""
    writer = await client_key(vault, "crm", "writer")
    mailer = await client_key(vault, "mailer", "lookup", ["newsletter.email"])
    p = person(2)
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE},
            headers=bearer(writer),
        )
        assert r.status_code == 201 and r.json()["status"] == "pending_confirmation"
        consent_id = r.json()["consent_id"]
        q = {
            "purpose": "newsletter.email",
            "email": p["email"].upper(),
            "contact": {"brand": "tresor"},
        }
        r = await http.post("/v1/lookup", json=q, headers=bearer(mailer))
        assert r.status_code == 403 and r.json()["reason"] == "consent_unconfirmed"

        (token,) = outbox_links(vault.settings.outbox_dir)
        page = await http.get(f"/confirm/{token}?lang=en")
        assert page.status_code == 200 and "Newsletter by e-mail" in page.text
        clock.advance(timedelta(hours=1))
        done = await http.post(f"/confirm/{token}?lang=en")
        assert done.status_code == 200 and "confirmed" in done.text

        r = await http.post("/v1/lookup", json=q, headers=bearer(mailer))
        assert r.status_code == 200, r.text
        assert r.json()["fields"] == {"email": p["email"].lower(), "name": p["name"]}

        r = await http.post(
            f"/v1/subjects/{sid}/consents/{consent_id}/withdraw", headers=bearer(writer)
        )
        assert r.status_code == 200 and r.json()["status"] == "withdrawn"
        r = await http.post("/v1/lookup", json=q, headers=bearer(mailer))
        assert r.status_code == 403 and r.json()["reason"] == "consent_withdrawn"


async def test_a_consent_scoped_to_a_brand_through_http(vault):
    """`evidence.brands` on a consent: stored and listed with the evidence; a lookup for
    another brand is 403 `brand_not_covered`; an unknown brand is a 422 naming
    `/evidence/brands` and records nothing; the preferences' evidence has no brands."""
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["offers.sms"])
    p = person(2110)
    evidence = {
        "touchpoint": "shop.counter",
        "method": "signature",
        "notice_version": "2026-10",
        "language": "de",
        "explicit": True,
    }
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        bad = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "offers.sms", "evidence": {**evidence, "brands": ["nobody"]}},
            headers=bearer(writer),
        )
        assert bad.status_code == 422, bad.text
        assert "/evidence/brands" in bad.text
        listed = await http.get(f"/v1/subjects/{sid}/consents", headers=bearer(writer))
        assert listed.json()["items"] == [], listed.text
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "offers.sms", "evidence": {**evidence, "brands": ["tresor"]}},
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        listed = await http.get(f"/v1/subjects/{sid}/consents", headers=bearer(writer))
        (consent,) = listed.json()["items"]
        assert consent["evidence"]["brands"] == ["tresor"]
        q = {"purpose": "offers.sms", "subject_id": sid}
        other = await http.post(
            "/v1/lookup",
            json={**q, "contact": {"brand": "tresor_finance"}},
            headers=bearer(shop),
        )
        assert other.status_code == 403 and other.json()["reason"] == "brand_not_covered"
        assert p["phone"] not in other.text
        own = await http.post(
            "/v1/lookup", json={**q, "contact": {"brand": "tresor"}}, headers=bearer(shop)
        )
        assert own.status_code == 200, own.text
