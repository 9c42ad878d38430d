"""Signing in to the privacy centre with only a phone number (both databases): the code
page says the code may come by text message, and the SMS code opens the overview."""

from __future__ import annotations

import re

from tests.support.factories import WRITER, api
from tests.support.self_service import Page
from vault.rights import selfservice
from vault.sms import read_outbox
from vault.subjects import store as subjects


async def test_a_customer_with_only_a_phone_number_signs_in_by_sms(vault):
    """Phone number in, SMS code out, code in: the overview shows the customer's data."""
    await subjects.create_subject(vault, WRITER, {"phone": "0221 555 98 76", "name": "Nur Telefon"})
    async with api(vault) as http:
        page = Page((await http.get("/privacy?lang=en")).text)
        r = await http.post(
            page.form("/privacy/sign-in")["action"],
            data={"_csrf_token": page.csrf(), "kind": "phone", "value": "0221 5559876"},
        )
        assert r.status_code == 200, r.text
        assert "Code from the e-mail or text message" in r.text and "by text message" in r.text
        await selfservice.wait_for_mail()
        (sms,) = read_outbox(vault.settings.sms_outbox_dir)
        assert sms.to == "+492215559876"
        code = re.search(r"\b(\d{6})\b", sms.text).group(1)
        form = Page(r.text).form("/privacy/verify")
        r = await http.post(form["action"], data={**form["fields"], "code": code})
        assert r.status_code == 303, r.text
        overview = await http.get("/privacy?lang=en")
    assert overview.status_code == 200 and "Nur Telefon" in overview.text
    assert "+492215559876" in overview.text
