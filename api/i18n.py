"""Texts shown to customers, in German and English, and the choice between them."""

from __future__ import annotations

from typing import Any

from litestar import Request

LANGUAGES = ("de", "en")

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "confirm_title": "Einwilligung bestätigen",
        "confirm_intro": "Bitte bestätigen Sie, dass wir Sie für diesen Zweck kontaktieren dürfen:",
        "confirm_button": "Ja, ich bin einverstanden",
        "confirm_hint": "Sie können Ihre Einwilligung jederzeit widerrufen.",
        "confirmed_title": "Vielen Dank!",
        "confirmed_text": "Ihre Einwilligung ist bestätigt.",
        "invalid_title": "Link ungültig",
        "invalid_text": "Dieser Bestätigungslink ist unbekannt, abgelaufen oder wurde bereits verwendet.",
        "unavailable_title": "Vorübergehend nicht erreichbar",
        "unavailable_text": "Bitte versuchen Sie es in einigen Minuten erneut.",
        "home_title": "Tresor – Datenschutz-Tresor für Kontaktdaten",
        "home_text": "Dieser Dienst verwahrt Kontaktdaten verschlüsselt und gibt sie nur für erlaubte Zwecke heraus.",
        "language": "Sprache",
    },
    "en": {
        "confirm_title": "Confirm your consent",
        "confirm_intro": "Please confirm that we may contact you for this purpose:",
        "confirm_button": "Yes, I agree",
        "confirm_hint": "You can withdraw your consent at any time.",
        "confirmed_title": "Thank you!",
        "confirmed_text": "Your consent is confirmed.",
        "invalid_title": "Invalid link",
        "invalid_text": "This confirmation link is unknown, has expired or was already used.",
        "unavailable_title": "Temporarily unavailable",
        "unavailable_text": "Please try again in a few minutes.",
        "home_title": "Tresor – privacy vault for contact data",
        "home_text": "This service keeps contact data encrypted and reveals it only for permitted purposes.",
        "language": "Language",
    },
}


def pick_language(request: Request[Any, Any, Any]) -> str:
    """`?lang=` wins, then the first supported Accept-Language entry, then German."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    header = request.headers.get("accept-language", "")
    for part in header.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "de"
