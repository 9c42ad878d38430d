"""The public pages of api/bases/confirm_pages.py: the landing page."""

from __future__ import annotations

from tests.support.factories import api


async def test_home_page_links_the_privacy_centre_console_and_api_docs(vault):
    """The landing page points customers, DPOs and developers to their entry points (de, en)."""
    async with api(vault) as http:
        de = await http.get("/")
        en = await http.get("/?lang=en")
    assert de.status_code == 200 and 'href="/privacy?lang=de"' in de.text
    assert "Datenschutz-Center" in de.text
    assert 'href="/dpo?lang=en"' in en.text and "API documentation" in en.text
