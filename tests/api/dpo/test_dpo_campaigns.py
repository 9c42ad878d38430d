"""The console's campaign plan in German and English: the month's campaigns in the order
they are served, their forecasts with counts below k as "< 10" and those the shown rest
would give away as "hidden", each forecast read audited for the signed-in DPO. Both
databases."""

from __future__ import annotations

import re

from tests.support.factories import api, client_key
from tests.support.privacy import audit_rows
from tests.vault.campaigns.test_booking import MARKETER, _campaign, _customers
from vault.audit.events import AuditAction
from vault.campaigns import booking


async def test_the_campaign_plan_page_shows_masked_forecasts_in_both_languages(vault):
    """12 customers, two campaigns: rank 1 booked (12 reachable), rank 2 a draft it blocks
    ("< 10" reachable, 12 blocked by the basket); the 12 shown as hidden beside reasons
    masked as "< 10" (they would tell those are 0); German and English headings."""
    sids = await _customers(vault, 12)
    first = await _campaign(vault, "Winterschlussverkauf", 1, sids)
    await _campaign(vault, "Socken", 2, sids)
    await booking.book(vault, MARKETER, first)
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        signin = await http.get("/dpo/signin?lang=en")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', signin.text).group(1)
        r = await http.post("/dpo/signin?lang=en", data={"api_key": dpo, "_csrf_token": token})
        assert r.status_code in (302, 303), r.text
        de = await http.get("/dpo/campaigns?lang=de&month=2026-11")
        en = await http.get("/dpo/campaigns?lang=en")
    assert de.status_code == 200 and en.status_code == 200, (de.text, en.text)
    assert "Kampagnenplan" in de.text and "gebucht" in de.text and "Entwurf" in de.text
    assert "Campaign plan" in en.text and "Reachable" in en.text
    rows = re.findall(r'<tr class="campaign-row".*?</tr>', en.text, re.S)
    assert ["Winterschlussverkauf" in rows[0], "Socken" in rows[1]] == [True, True]
    cells = [re.findall(r"<td>([^<]*)</td>", row)[-6:] for row in rows]
    assert cells[0] == ["12", "hidden", "&lt; 10", "&lt; 10", "&lt; 10", "&lt; 10"]
    assert cells[1] == ["12", "&lt; 10", "hidden", "&lt; 10", "&lt; 10", "&lt; 10"]
    assert "verborgen" in de.text
    reads = [e for e in await audit_rows(vault) if e["action"] == str(AuditAction.CAMPAIGN_REPORT)]
    assert len(reads) == 4 and {e["actor_type"] for e in reads} == {"dpo"}
    for sid in sids:
        assert sid not in de.text and sid not in en.text
