"""Left-out fields everywhere, on both databases: the writer API takes an optional
`excluded_fields` list for a consent (validated against the purpose's fields, 422 with the
field's pointer otherwise, nothing recorded) and returns it; the lookup then denies
`field_not_covered` for a left-out field; the subject's Art. 15 export and the consent proof
(JSON and the printable page) show what was left out."""

from __future__ import annotations

from tests.support.db import count_rows
from tests.support.factories import api, bearer, client_key, person
from vault.storage.tables import consents

EXPLICIT = {
    "touchpoint": "hotline.inbound",
    "method": "recorded_call",
    "notice_version": "2026-10",
    "language": "de",
    "explicit": True,
}


async def _world(vault, http) -> dict[str, str]:
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "datenschutz", "dpo")
    texter = await client_key(vault, "texter", "lookup", ["offers.sms"])
    sid = (await http.post("/v1/subjects", json=person(21), headers=bearer(writer))).json()[
        "subject_id"
    ]
    return {"sid": sid, "writer": writer, "dpo": dpo, "texter": texter}


async def test_a_consent_leaving_out_a_field_is_recorded_returned_and_enforced(vault):
    """`excluded_fields` is stored and returned on creation and in the list; a lookup that
    would reveal the left-out field is denied, one for the rest is allowed."""
    async with api(vault) as http:
        w = await _world(vault, http)
        r = await http.post(
            f"/v1/subjects/{w['sid']}/consents",
            json={"purpose": "offers.sms", "evidence": EXPLICIT, "excluded_fields": ["name"]},
            headers=bearer(w["writer"]),
        )
        assert r.status_code == 201, r.text
        assert r.json()["excluded_fields"] == ["name"]
        cid = r.json()["consent_id"]
        r = await http.get(f"/v1/subjects/{w['sid']}/consents", headers=bearer(w["writer"]))
        (item,) = [c for c in r.json()["items"] if c["consent_id"] == cid]
        assert item["excluded_fields"] == ["name"]

        async def lookup(fields: list[str]) -> dict:
            r = await http.post(
                "/v1/lookup",
                json={
                    "purpose": "offers.sms",
                    "subject_id": w["sid"],
                    "fields": fields,
                    "contact": {"brand": "tresor"},
                },
                headers=bearer(w["texter"]),
            )
            return {"status": r.status_code, **r.json()}

        denied = await lookup(["phone", "name"])
        assert denied["status"] == 403 and denied["reason"] == "field_not_covered"
        assert (await lookup(["phone"]))["status"] == 200

        r = await http.get(f"/v1/subjects/{w['sid']}/export", headers=bearer(w["dpo"]))
        assert r.status_code == 200, r.text
        (exported,) = [c for c in r.json()["consents"] if c["id"] == cid]
        assert exported["excluded_fields"] == ["name"]
        r = await http.get(
            f"/v1/subjects/{w['sid']}/export",
            params={"format": "html", "lang": "en"},
            headers=bearer(w["dpo"]),
        )
        assert "Left out of the consent" in r.text

        r = await http.get(f"/v1/consents/{cid}/proof", headers=bearer(w["dpo"]))
        assert r.status_code == 200, r.text
        assert r.json()["excluded_fields"] == ["name"]
        r = await http.get(
            f"/v1/consents/{cid}/proof",
            params={"format": "html", "lang": "en"},
            headers=bearer(w["dpo"]),
        )
        assert 'id="proof-left-out"' in r.text and "Data left out of the consent" in r.text


async def test_fields_not_of_the_purpose_or_all_of_them_are_422_and_record_nothing(vault):
    """A field the purpose does not use, every field of it, a repeated field or one of a
    basis other than consent is a 422 naming `excluded_fields`; no consent is recorded."""
    async with api(vault) as http:
        w = await _world(vault, http)
        for purpose, fields in (
            ("offers.sms", ["email"]),
            ("offers.sms", ["phone", "name"]),
            ("offers.sms", ["name", "name"]),
            ("offers.sms", ["NAME!"]),
            ("offers.sms", ["postal_address"]),
        ):
            r = await http.post(
                f"/v1/subjects/{w['sid']}/consents",
                json={"purpose": purpose, "evidence": EXPLICIT, "excluded_fields": fields},
                headers=bearer(w["writer"]),
            )
            assert r.status_code == 422, (fields, r.text)
            problem = r.json()
            fields_named = [e["field"] for e in problem["errors"]]
            assert any(f.startswith("/excluded_fields") for f in fields_named), problem
        r = await http.post(
            f"/v1/subjects/{w['sid']}/consents",
            json={
                "purpose": "order.delivery",
                "reference": "order 1",
                "excluded_fields": ["phone"],
            },
            headers=bearer(w["writer"]),
        )
        assert r.status_code == 422, r.text
    assert await count_rows(vault, consents) == 0
