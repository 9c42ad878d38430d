"""The console's audit search and export (both databases): the DPO's own page views hidden
unless asked, actions and clients as select lists with human names, and the filtered range
exported as CSV or JSON Lines, the export itself audited."""

from __future__ import annotations

import csv
import html
import io
import json
import re

from sqlalchemy import select

from tests.support.console import sign_in
from tests.support.factories import NEWSLETTER_EVIDENCE, api, bearer, client_key, person
from tests.support.privacy import CANARY, found_canaries
from vault.storage.audit_tables import audit_events


async def _world(vault, http) -> dict[str, str]:
    writer = await client_key(vault, "crm", "writer")
    mailer = await client_key(vault, "mailer", "lookup", ["newsletter.email"])
    dpo = await client_key(vault, "datenschutz", "dpo")
    sid = (await http.post("/v1/subjects", json=CANARY, headers=bearer(writer))).json()[
        "subject_id"
    ]
    await http.post(
        f"/v1/subjects/{sid}/consents",
        json={"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE},
        headers=bearer(writer),
    )
    for _ in range(2):
        await http.post(
            "/v1/lookup",
            json={"purpose": "newsletter.email", "subject_id": sid, "contact": {"brand": "tresor"}},
            headers=bearer(mailer),
        )
    other = (await http.post("/v1/subjects", json=person(9), headers=bearer(writer))).json()
    return {"sid": sid, "other": other["subject_id"], "dpo": dpo}


def _rows(page: str) -> list[str]:
    body = page.split('id="audit-results"', 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr data-seq=")[1:]


async def test_page_views_are_hidden_unless_the_toggle_asks_for_them(vault):
    """After a few page views the search lists only the customers' events; `views=1` shows
    the DPO's searches and queue views too."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        for _ in range(3):
            await http.get("/dpo/requests?lang=en")
        page = await http.get("/dpo/audit?lang=en&client=datenschutz")
        assert page.status_code == 200
        assert "page views (searches, lists, statistics) are hidden" in page.text
        texts = _rows(page.text)
        assert texts and all(
            "dpo:audit:search" not in t and "dpo:request:list" not in t for t in texts
        )
        assert any("dpo:session:start" in t for t in texts)
        page = await http.get("/dpo/audit?lang=en&client=datenschutz&views=1")
        texts = _rows(page.text)
        assert sum("dpo:request:list" in t for t in texts) == 3
        assert any("dpo:audit:search" in t for t in texts)
        assert 'id="f-views" name="views" value="1" checked' in page.text


async def test_actions_and_clients_are_select_lists_with_human_names(vault):
    """The action filter lists every action by its name in the page's language; the client
    filter names each client with its role; rows show the name beside the tag."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"], lang="de")
        page = await http.get("/dpo/audit?lang=de&action=client:contact:lookup")
        assert '<select id="f-action" name="action">' in page.text
        assert (
            '<option value="client:contact:lookup" selected>'
            "Kontaktdaten gelesen (Abfrage) (API-Client)</option>"
        ) in page.text
        assert '<option value="mailer">mailer (liest Kontaktdaten)</option>' in page.text
        rows = _rows(page.text)
        assert len(rows) == 2 and all("Kontaktdaten gelesen (Abfrage)" in r for r in rows)
        assert f'data-copy="{w["sid"]}"' in page.text


async def test_the_export_button_downloads_the_filtered_range_and_is_audited(vault):
    """CSV and JSON Lines hold exactly the filtered events (oldest first, no contact data);
    each download is a `dpo:audit:export` event naming the filter and format."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        page = await http.get(f"/dpo/audit?lang=en&subject_id={w['sid']}")
        assert 'id="audit-export"' in page.text
        links = re.findall(r'href="(/dpo/audit/export\?[^"]+)"', page.text)
        url = html.unescape(next(link for link in links if "format=csv" in link))
        assert f"subject_id={w['sid']}" in url
        r = await http.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert rows and all(row["subject_id"] == w["sid"] for row in rows)
        assert [int(row["seq"]) for row in rows] == sorted(int(row["seq"]) for row in rows)
        assert sum(row["action"] == "client:contact:lookup" for row in rows) == 2
        assert found_canaries(r.text) == []
        r = await http.get(url.replace("format=csv", "format=jsonl"))
        lines = [json.loads(line) for line in r.text.splitlines()]
        # The same events, plus the record of this export itself (written before the read).
        assert [x["seq"] for x in lines[:-1]] == [int(row["seq"]) for row in rows]
        assert lines[-1]["action"] == "dpo:audit:export" == rows[-1]["action"]
        r = await http.get(url.replace("format=csv", "format=xml"))
        assert r.status_code == 422
    async with vault.engine.connect() as conn:
        exports = (
            await conn.execute(
                select(audit_events).where(audit_events.c.action == "dpo:audit:export")
            )
        ).all()
    assert len(exports) == 2 and all(e.subject_id == w["sid"] for e in exports)
    assert sorted(json.loads(e.detail)["format"] for e in exports) == ["csv", "jsonl"]
