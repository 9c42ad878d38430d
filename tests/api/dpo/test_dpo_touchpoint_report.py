"""The console's touchpoint report in German and English for a signed-in marketer: the
register's fields beside each touchpoint, direct and indirect touchpoints under their own
headings, counts below k as "< 10", the read audited, no subject id on the page. Both
databases."""

from __future__ import annotations

import re

from tests.api.dpo.test_marketer_console import sign_in
from tests.support.factories import api, client_key
from tests.vault.campaigns.test_reports import report_reads
from tests.vault.campaigns.test_touchpoint_report import seed_period


def _cells(html: str, touchpoint: str) -> list[str]:
    (row,) = re.findall(rf'<tr class="touchpoint-row" data-touchpoint="{re.escape(touchpoint)}">'
                        r".*?</tr>", html, re.S)  # fmt: skip
    return re.findall(r'<td class="num report-count">([^<]*)</td>', row)


async def test_the_touchpoint_page_in_both_languages(vault):
    """November: the newsletter form's 12 consents and 10 withdrawals, the review portals
    as an indirect touchpoint with "< 10"; headings and register labels in each language."""
    sids = (await seed_period(vault))["form"]
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        await sign_in(http, key)
        de = await http.get("/dpo/reports/touchpoints?lang=de&month=2026-11")
        en = await http.get("/dpo/reports/touchpoints?lang=en&month=2026-11")
        bad = await http.get("/dpo/reports/touchpoints?lang=en&months=40")
    assert de.status_code == 200 and en.status_code == 200, (de.text, en.text)
    assert "Touchpoint-Bericht" in de.text and "Indirekte Touchpoints" in de.text
    assert "Bewertungsportale" in de.text and "Verantwortlich" in de.text
    assert "Touchpoint report" in en.text and "Indirect touchpoints" in en.text
    assert "Review portals" in en.text and "Follow-ups about complaints" in en.text
    assert _cells(en.text, "web.newsletter_form")[:2] == ["12", "10"]
    assert _cells(en.text, "web.reviews")[0] == "&lt; 10"
    for html in (de.text, en.text):
        for n in re.findall(r'<td class="num report-count">([^<]*)</td>', html):
            assert n == "&lt; 10" or int(n) >= 10, n
        assert not any(s in html for s in sids)
    assert bad.status_code == 422
    assert len(await report_reads(vault)) == 2
