"""The console shows a calamity campaign's hold in German and English: on the campaign
plan the held offer's row says "held by" the recall with its count, and the calendar
marks the hold as in force. Both databases."""

from __future__ import annotations

import re

from tests.support.factories import api, client_key
from tests.vault.campaigns.test_booking import MARKETER
from tests.vault.campaigns.test_calamity_holds import REACHED, _customers, _plan
from vault.campaigns import booking


async def test_the_plan_and_the_calendar_show_the_offer_held_by_the_recall(vault):
    """12 customers: the booked recall reaches 8 of the booked offer's; the offer's row
    reads "Held by Recall: < 10" (8 is below k) and "Zurückgehalten durch Recall", and the
    calendar's hold row is in force."""
    sids = await _customers(vault, 12)
    offer, recall = await _plan(vault, sids)
    await booking.book(vault, MARKETER, offer)
    await booking.book(vault, MARKETER, recall)
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        signin = await http.get("/dpo/signin?lang=en")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', signin.text).group(1)
        r = await http.post("/dpo/signin?lang=en", data={"api_key": dpo, "_csrf_token": token})
        assert r.status_code in (302, 303), r.text
        en = await http.get("/dpo/campaigns?lang=en&month=2026-11")
        de = await http.get("/dpo/campaigns?lang=de&month=2026-11")
        cal = await http.get("/dpo/calendar?lang=en&month=2026-11")
    assert en.status_code == de.status_code == cal.status_code == 200, (en.text, cal.text)
    (row,) = re.findall(rf'<tr class="campaign-row" data-campaign="{offer}".*?</tr>', en.text, re.S)
    assert "Held by Recall: &lt; 10 recipients" in row and REACHED < 10
    (other,) = re.findall(
        rf'<tr class="campaign-row" data-campaign="{recall}".*?</tr>', en.text, re.S
    )
    assert "Held by" not in other
    assert "Zurückgehalten durch Recall" in de.text
    (hold,) = re.findall(r'<tr class="hold-row".*?</tr>', cal.text, re.S)
    assert 'data-in-force="true"' in hold and "held (booked)" in hold
    (held_row,) = re.findall(
        rf'<tr class="calendar-row" data-campaign="{offer}".*?</tr>', cal.text, re.S
    )
    assert "Held by Recall" in held_row
