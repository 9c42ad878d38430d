"""The notice of an identity change to the old address (vault.subjects.identity_notice): both
languages name the changed fields whatever their order, never an address, and carry the link
with its validity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from vault.subjects import identity_notice

SETTINGS = SimpleNamespace(mail_from="privacy@example.test", public_url="https://vault.test")
AT = datetime(2026, 11, 24, 18, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kinds", "de", "en"),
    [
        (["email"], "die E-Mail-Adresse Ihres", "the e-mail address of"),
        (["phone"], "die Telefonnummer Ihres", "the phone number of"),
        (["phone", "email"], "die E-Mail-Adresse und die Telefonnummer", "address and the phone"),
    ],
)
def test_the_notice_names_the_changed_fields_in_both_languages(kinds, de, en):
    """German and English name exactly the changed fields, in either order, with the link,
    its validity and the end of the cooling-off; no address appears but the recipient."""
    msg = identity_notice.mail(
        SETTINGS, "old@example.test", kinds, "tok-123", AT, AT + timedelta(days=7)
    )
    body = msg.get_content()
    assert de in body and en in body
    assert "https://vault.test/privacy/identity/tok-123" in body
    assert f"{identity_notice.LINK_VALIDITY.days} Tage" in body
    assert "01.12.2026, 18:05" in body and "2026-12-01 18:05" in body
    assert msg["To"] == "old@example.test" and "@" not in body
    assert msg["Content-Language"] == "de, en"
