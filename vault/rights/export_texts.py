"""The fixed texts of the access export, in German and English: the categories of personal
data (Art. 15(1)(b)), the lawful bases, the data subject's rights (Art. 15(1)(e)-(f)) and the
statement on automated decisions (Art. 15(1)(h)).

Split from `export`, which collects a subject's data: these are the same for every subject,
and the HTML export and the privacy centre render them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


#: Categories of personal data (Art. 15(1)(b)), by field.
CATEGORY_TITLES: dict[str, dict[str, str]] = {
    "email": {"de": "E-Mail-Adresse", "en": "E-mail address"},
    "phone": {"de": "Telefonnummer", "en": "Phone number"},
    "name": {"de": "Name", "en": "Name"},
    "postal_address": {"de": "Postanschrift", "en": "Postal address"},
    "external_ref": {"de": "Kundennummer", "en": "Customer number"},
    "consents": {
        "de": "Einwilligungen und andere Rechtsgrundlagen mit Nachweis",
        "en": "Consents and other lawful bases with their evidence",
    },
    "consent_evidence": {
        "de": "IP-Adresse und Browserkennung bei Erteilung einer Einwilligung",
        "en": "IP address and browser identifier when a consent was given",
    },
    "access_log": {
        "de": "Protokoll der Zugriffe auf Ihre Daten",
        "en": "Log of the accesses to your data",
    },
    "contact_preferences": {
        "de": "Ihre Kontaktwünsche (bevorzugte Kanäle, Ruhezeiten, Zeitzone, eigenes Limit) "
        "und ihre Änderungen",
        "en": "Your contact preferences (preferred channels, quiet hours, time zone, own cap) "
        "and their changes",
    },
    "followups": {
        "de": "Vereinbarte Rückmeldungen (Zeitraum, Kanal, Anlass)",
        "en": "Agreed follow-ups (time window, channel, occasion)",
    },
    "contact_history": {
        "de": "Kontaktverlauf: wann wir Sie wie und wozu kontaktiert haben und wann Sie uns",
        "en": "Contact history: when, how and why we contacted you, and when you contacted us",
    },
}


LAWFUL_BASIS_TITLES: dict[str, dict[str, str]] = {
    "consent": {
        "de": "Einwilligung (Art. 6 Abs. 1 lit. a DSGVO)",
        "en": "Consent (Art. 6(1)(a) GDPR)",
    },
    "contract": {
        "de": "Vertrag (Art. 6 Abs. 1 lit. b DSGVO)",
        "en": "Contract (Art. 6(1)(b) GDPR)",
    },
    "legal_obligation": {
        "de": "Rechtliche Verpflichtung (Art. 6 Abs. 1 lit. c DSGVO)",
        "en": "Legal obligation (Art. 6(1)(c) GDPR)",
    },
    "legitimate_interest": {
        "de": "Berechtigtes Interesse (Art. 6 Abs. 1 lit. f DSGVO)",
        "en": "Legitimate interest (Art. 6(1)(f) GDPR)",
    },
}


#: The subject's rights (Art. 15(1)(e), (f); Art. 7(3), 20, 21).
RIGHTS: list[dict[str, Any]] = [
    {
        "right": "access",
        "article": "Art. 15",
        "title": {"de": "Auskunft", "en": "Access"},
        "text": {
            "de": "Sie können jederzeit Auskunft über die zu Ihnen gespeicherten Daten verlangen.",
            "en": "You may ask at any time which data about you we store.",
        },
    },
    {
        "right": "rectification",
        "article": "Art. 16",
        "title": {"de": "Berichtigung", "en": "Rectification"},
        "text": {
            "de": "Sie können verlangen, dass unrichtige Daten berichtigt werden.",
            "en": "You may have inaccurate data corrected.",
        },
    },
    {
        "right": "erasure",
        "article": "Art. 17",
        "title": {"de": "Löschung", "en": "Erasure"},
        "text": {
            "de": "Sie können die Löschung Ihrer Daten verlangen, soweit keine gesetzliche "
            "Aufbewahrungspflicht entgegensteht; solche Daten sperren wir bis zum Fristende.",
            "en": "You may have your data erased unless a statutory retention duty applies; "
            "such data is restricted until the retention ends.",
        },
    },
    {
        "right": "restriction",
        "article": "Art. 18",
        "title": {"de": "Einschränkung der Verarbeitung", "en": "Restriction of processing"},
        "text": {
            "de": "Sie können verlangen, dass wir Ihre Daten nur noch speichern.",
            "en": "You may have us only store your data and not otherwise use it.",
        },
    },
    {
        "right": "portability",
        "article": "Art. 20",
        "title": {"de": "Datenübertragbarkeit", "en": "Data portability"},
        "text": {
            "de": "Sie erhalten Ihre Daten in einem maschinenlesbaren Format (JSON).",
            "en": "You receive your data in a machine-readable format (JSON).",
        },
    },
    {
        "right": "objection",
        "article": "Art. 21",
        "title": {"de": "Widerspruch", "en": "Objection"},
        "text": {
            "de": "Sie können der Verarbeitung aus berechtigtem Interesse widersprechen; "
            "einem Widerspruch gegen Direktwerbung folgen wir sofort und ausnahmslos.",
            "en": "You may object to processing based on legitimate interest; an objection "
            "to direct marketing takes effect at once and without exception.",
        },
    },
    {
        "right": "withdraw_consent",
        "article": "Art. 7(3)",
        "title": {"de": "Widerruf einer Einwilligung", "en": "Withdrawal of consent"},
        "text": {
            "de": "Sie können jede Einwilligung jederzeit mit Wirkung für die Zukunft "
            "widerrufen, so einfach, wie Sie sie erteilt haben.",
            "en": "You may withdraw any consent at any time, as easily as you gave it; the "
            "withdrawal takes effect for the future.",
        },
    },
    {
        "right": "complaint",
        "article": "Art. 77",
        "title": {
            "de": "Beschwerde bei einer Aufsichtsbehörde",
            "en": "Complaint to a supervisory authority",
        },
        "text": {
            "de": "Sie können sich bei einer Datenschutz-Aufsichtsbehörde beschweren, "
            "insbesondere in dem Land, in dem Sie leben oder arbeiten.",
            "en": "You may lodge a complaint with a data-protection supervisory authority, "
            "in particular in the country where you live or work.",
        },
    },
]


AUTOMATED_DECISIONS = {
    "exists": False,
    "text": {
        "de": "Wir treffen keine ausschließlich automatisierten Entscheidungen und betreiben "
        "kein Profiling im Sinne von Art. 22 DSGVO.",
        "en": "We make no decisions based solely on automated processing and do no "
        "profiling within the meaning of Art. 22 GDPR.",
    },
}
