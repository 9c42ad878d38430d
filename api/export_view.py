"""The readable rendering of the Art. 15 / Art. 20 export, in German or English.

The domain builds the document (`vault.rights.export.build_export`); this module only turns it
into HTML with the autoescaping Jinja template `api/templates/export.html`, so every value
from the document (names, addresses, reasons) is escaped.

Channels the rules declare (`[channel.<id>]` in policies/contact-pressure.toml: a visit, a
print mailing, social media) are not in the template's labels, which know the four
built-in ones; their names come from the rules, so the caller passes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from vault.rights.export_texts import CATEGORY_TITLES

if TYPE_CHECKING:
    from vault.catalogue.contact_pressure import PressureRules

TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

LABELS: dict[str, dict[str, str]] = {
    "de": {
        "title": "Ihre Daten bei uns – Auskunft nach Art. 15 DSGVO",
        "generated": "Erstellt am",
        "subject": "Ihre Kennung",
        "status": "Status",
        "contact": "Ihre Kontaktdaten",
        "no_contact": "Es sind keine Kontaktdaten mehr gespeichert.",
        "categories": "Kategorien von Daten (Art. 15 Abs. 1 lit. b)",
        "purposes": "Zwecke, Rechtsgrundlagen und Speicherdauer (Art. 15 Abs. 1 lit. a, d)",
        "purpose": "Zweck",
        "basis": "Rechtsgrundlage",
        "fields": "Daten",
        "retention": "Speicherdauer",
        "consents": "Ihre Einwilligungen und andere Rechtsgrundlagen",
        "given": "Erteilt",
        "expires": "Gültig bis",
        "withdrawn": "Widerrufen/beendet",
        "left_out": "Von der Einwilligung ausgenommen (wird dafür nie herausgegeben)",
        "evidence": "Nachweis",
        "history": "Verlauf",
        "recipients": "Empfänger: wer Ihre Daten gelesen hat (Art. 15 Abs. 1 lit. c)",
        "no_recipients": "Bisher hat kein System Ihre Kontaktdaten gelesen.",
        "client": "System",
        "when": "Zeitpunkt",
        "systems": "Empfänger je Zweck: erster und letzter Zugriff",
        "first": "Erster Zugriff",
        "last": "Letzter Zugriff",
        "notices": "Benachrichtigte Empfänger (Art. 19 DSGVO)",
        "no_notices": "Bisher musste kein Empfänger benachrichtigt werden.",
        "change": "Änderung",
        "told": "Benachrichtigt",
        "confirmed": "Bestätigt",
        "closed": "vom Datenschutz geschlossen",
        "sources": "Herkunft der Daten (Art. 15 Abs. 1 lit. g)",
        "retained": "Nach Löschung gesperrt aufbewahrt (Art. 17 Abs. 3 lit. b)",
        "until": "Aufbewahrt bis",
        "shredded": "Vernichtet am",
        "rights": "Ihre Rechte (Art. 15 Abs. 1 lit. e, f)",
        "automated": "Automatisierte Entscheidungen (Art. 15 Abs. 1 lit. h)",
        "requests": "Ihre Anfragen",
        "due": "Frist",
        "outcome": "Ergebnis",
        "none": "–",
    },
    "en": {
        "title": "Your data with us – access under Art. 15 GDPR",
        "generated": "Generated at",
        "subject": "Your identifier",
        "status": "Status",
        "contact": "Your contact data",
        "no_contact": "No contact data is stored any more.",
        "categories": "Categories of data (Art. 15(1)(b))",
        "purposes": "Purposes, lawful bases and retention (Art. 15(1)(a), (d))",
        "purpose": "Purpose",
        "basis": "Lawful basis",
        "fields": "Data",
        "retention": "Retention",
        "consents": "Your consents and other lawful bases",
        "given": "Given",
        "expires": "Valid until",
        "withdrawn": "Withdrawn/ended",
        "left_out": "Left out of the consent (never given out for it)",
        "evidence": "Evidence",
        "history": "History",
        "recipients": "Recipients: who read your data (Art. 15(1)(c))",
        "no_recipients": "No system has read your contact data so far.",
        "client": "System",
        "when": "When",
        "systems": "Recipients per purpose: first and last read",
        "first": "First read",
        "last": "Last read",
        "notices": "Recipients told about changes (Art. 19 GDPR)",
        "no_notices": "No recipient had to be told so far.",
        "change": "Change",
        "told": "Told",
        "confirmed": "Confirmed",
        "closed": "closed by the data protection officer",
        "sources": "Where the data came from (Art. 15(1)(g))",
        "retained": "Kept restricted after erasure (Art. 17(3)(b))",
        "until": "Kept until",
        "shredded": "Destroyed on",
        "rights": "Your rights (Art. 15(1)(e), (f))",
        "automated": "Automated decisions (Art. 15(1)(h))",
        "requests": "Your requests",
        "due": "Due",
        "outcome": "Outcome",
        "none": "–",
    },
}


def _render(doc: dict[str, Any], lang: str, rules: PressureRules, *, standalone: bool) -> str:
    lang = lang if lang in LABELS else "de"
    purposes = {p["id"]: p for p in doc.get("purposes", [])}
    return _env.get_template("export.html").render(
        doc=doc,
        lang=lang,
        t=LABELS[lang],
        purposes=purposes,
        field_titles=CATEGORY_TITLES,
        declared_channel=lambda channel: rules.channel_name(channel, lang),
        standalone=standalone,
    )


def render_export_html(doc: dict[str, Any], lang: str, rules: PressureRules) -> str:
    """A complete, self-contained HTML page of the export (to view, print or save);
    `rules` name the declared channels."""
    return _render(doc, lang, rules, standalone=True)


def render_html(doc: dict[str, Any], lang: str, rules: PressureRules) -> str:
    """The export as an HTML fragment, to embed in another page (the privacy centre)."""
    return _render(doc, lang, rules, standalone=False)
