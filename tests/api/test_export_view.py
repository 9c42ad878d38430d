"""The readable export names a channel the rules declare (a field-sales visit) by its
German or English name from policies/contact-pressure.toml, in the contact history of the
full page and of the privacy centre's fragment, never by its bare id. Both databases."""

from __future__ import annotations

import re

from api.export_view import render_export_html, render_html
from tests.support.dsar import DPO
from tests.vault.outreach.test_declared_channels import _announce, _customer
from vault.rights.export import build_export


async def test_a_visit_in_the_contact_history_is_named_in_the_readers_language(vault):
    """One commercial visit: the German page says "Besuch durch den Außendienst", the
    English page and fragment "Visit by our field sales team"; no cell says "visit"."""
    sid = await _customer(vault, 3701, "offers.visit")
    await _announce(vault, sid, "offers.visit")
    doc = await build_export(vault, DPO, sid)
    assert [c["channel"] for c in doc["contact_history"]] == ["visit"]
    rules = vault.pressure_rules
    de = render_export_html(doc, "de", rules)
    en = render_export_html(doc, "en", rules)
    fragment = render_html(doc, "en", rules)
    assert "Besuch durch den Außendienst" in de
    assert "Visit by our field sales team" in en and "Visit by our field sales team" in fragment
    for page in (de, en, fragment):
        assert not re.search(r"<td>\s*visit\s*</td>", page)
