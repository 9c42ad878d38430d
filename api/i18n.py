"""Texts shown to customers and DPOs, in German and English, through gettext catalogues.

The texts live in Babel message catalogues, `api/locale/{de,en}/LC_MESSAGES/messages.po`;
`make messages-extract | messages-update | messages-compile` run pybabel over them (see the
README). Templates call `_("id")`, `ngettext("id", "id", n)` and `text_for("prefix_", value)`
(Jinja2's i18n extension, bound per render to the page's `lang`); Python code reads
`TEXTS[lang]["id"]` or calls `gettext`/`ngettext` here.

Message ids are symbolic keys (`pc_title`), not English sentences, because pages compose ids
from domain values (`"status_" + status`), because one English word needs different German
ones in different places ("Cancel": "Abbrechen", "Absagen"), and because a corrected English
sentence must not orphan its German translation. English is therefore a translation like
German, and both catalogues translate every id (tests/api/test_i18n_catalogues.py).

Dates and numbers are formatted with Babel (CLDR) here, so that every page says them the same
way in each language.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, dates, numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context
from litestar import Request

from vault.admin.clients import Role
from vault.audit.events import AuditAction, Decision
from vault.campaigns.opt_out_events import DIMENSIONS
from vault.campaigns.records import CampaignState
from vault.campaigns.reports import BANDS
from vault.campaigns.touchpoint_report import MEASURES as TOUCHPOINT_MEASURES
from vault.campaigns.touchpoint_report import NONE, UNREGISTERED
from vault.catalogue.purposes import CONTACT_FIELDS, Channel, CommunicationType, LawfulBasis
from vault.catalogue.touchpoints import IMPORTANCES, KINDS, STATUSES
from vault.outreach.followups import NOTE_KINDS, FollowupStatus
from vault.outreach.preference_changes import SOURCES
from vault.outreach.preferences import DAYS
from vault.rights.requests import RequestStatus, RequestType
from vault.rights.selfservice import ACCESS_KINDS
from vault.rights.selfservice.giving import DURATION_STEPS
from vault.subjects.decision import BasisStatus, DenyReason
from vault.subjects.store import INDEXED

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

#: The CLDR locale behind each language: plural rules, number symbols, date patterns.
LOCALES: Mapping[str, Locale] = MappingProxyType(
    {"de": Locale.parse("de_DE"), "en": Locale.parse("en")}
)

#: The request moves a DPO makes on the console, as its forms name them.
_DPO_MOVES = ("verify", "approve", "complete", "extend", "reject")

#: Ids that pages and controllers compose from a prefix and a domain value, e.g.
#: `text_for("status_", consent.status)` or `t[f"done_{done}"]`. Extraction
#: (api/i18n_extract.py) expands them, so `make messages-update` keeps them, and the catalogue
#: test proves that every value has a text in both languages.
FAMILIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "basis_": tuple(LawfulBasis),
        "status_": tuple(BasisStatus),
        "rtype_": tuple(RequestType),
        "rstatus_": tuple(RequestStatus),
        "decision_": tuple(Decision),
        "access_": tuple(dict.fromkeys(ACCESS_KINDS.values())),  # the privacy centre's log
        "decision_audience_check_": tuple(Decision),
        "decision_contact_record_": tuple(Decision),
        "dpo_": tuple(Decision),
        "field_": (*CONTACT_FIELDS, "street", "postal_code", "city", "country"),
        "fu_note_": tuple(NOTE_KINDS),
        "fu_status_": tuple(FollowupStatus),
        "fu_channel_": tuple(Channel),
        "pc_ch_dir_": ("outbound", "inbound"),  # contacts.direction
        "pc_pref_type_": tuple(CommunicationType),
        "pc_pref_channel_": tuple(Channel),
        "pc_pref_day_": tuple(DAYS),
        "pc_pref_source_": tuple(SOURCES),
        "pc_identity_what_": (
            "email",
            "phone",
            "email_phone",
        ),  # vault.subjects.identity kinds, joined
        "done_": (
            "withdrawn",
            "requested",
            "signed_out",
            "erased",
            "expired",
            "consented",
            "confirm_sent",
        ),  # ?done= notices
        "dpo_contacts_by_": ("touchpoint", "phase", "brand", "channel"),
        "dpo_campaign_state_": tuple(CampaignState),
        "dpo_reports_band_": BANDS,  # vault.campaigns.reports basket-use bands
        "dpo_reports_dim_": DIMENSIONS,  # the opt-out report's groupings
        # The touchpoint report (vault.campaigns.touchpoint_report, api/dpo/reports.py).
        "dpo_tp_m_": TOUCHPOINT_MEASURES,
        "dpo_tp_kind_": (*KINDS, "other"),
        "dpo_tp_importance_": IMPORTANCES,
        "dpo_tp_status_": STATUSES,
        "dpo_tp_pseudo_": (NONE, UNREGISTERED),
        "dpo_pref_reason_": (DenyReason.CONTACT_QUIET_HOURS, DenyReason.CONTACT_CAP_REACHED),
        "dpo_proof_sealed_": ("opened", "none", "shredded"),  # ConsentProof.sealed_evidence
        "pc_give_days_": tuple(str(days) for days in DURATION_STEPS),  # consent durations
        # The console's request page (api/dpo/requests.py): its moves, their help, the
        # reason fields, the notice after each move and the refusal texts.
        "dpo_req_act_": _DPO_MOVES,
        "dpo_req_help_": _DPO_MOVES,
        "dpo_req_done_": _DPO_MOVES,
        "dpo_req_reason_": ("reject", "extend", "complete"),
        "dpo_req_refused_": ("409", "422"),
        # The console's subject search and overview (api/dpo/subjects.py).
        "dpo_subject_kind_": tuple(INDEXED),
        "dpo_subject_status_": ("active", "restricted", "erased"),
        "dpo_role_": tuple(Role),
        # Human names of the audit trail's actions (the console's select list and tables).
        "action_": tuple(AuditAction),
    }
)


def N_(msgid: str) -> str:  # noqa: N802 (gettext's name for it)
    """Marks an id that is translated later (passed on, then read through `TEXTS`), so that
    extraction sees it; returns it unchanged."""
    return msgid


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
    return DEFAULT_LANGUAGE


# -- catalogues ---------------------------------------------------------------------------------


def catalogue_path(lang: str) -> Path:
    """The `.po` file of a language (the source; the `.mo` beside it is compiled from it)."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_translations(lang: str) -> Translations:
    """The language's translations: the compiled `.mo` when it is at least as new as its
    `.po` (`make messages-compile`, run by `make run` and `make test`), else the `.po`
    compiled in memory. A stale `.mo` (a `.po` edited and not compiled) or a missing one
    (a fresh clone run without make, an installed wheel) would otherwise show old texts or
    bare ids; a `.po` that does not parse stops the start (fail closed)."""
    po = catalogue_path(lang)
    mo = po.with_suffix(".mo")
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as fp:
            return Translations(fp, domain=DOMAIN)
    with po.open("rb") as fp:
        catalogue = read_po(fp, locale=lang, domain=DOMAIN, abort_invalid=True)
    compiled = BytesIO()
    write_mo(compiled, catalogue)  # like `pybabel compile`: fuzzy entries are left out
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def _as_mapping(translations: Translations) -> Mapping[str, str]:
    """Every id of a catalogue with its text; an id with plural forms reads as its plural
    form (`TEXTS[lang]["pc_session_hint"]` keeps working for code that formats a count
    without `ngettext`). `_catalog` is GNUTranslations' table, the only way to list ids."""
    texts: dict[str, str] = {}
    for key in translations._catalog:
        msgid = key[0] if isinstance(key, tuple) else key
        if msgid:  # "" is the catalogue's header
            texts[msgid] = (
                translations.ngettext(msgid, msgid, 2)
                if isinstance(key, tuple)
                else translations.gettext(msgid)
            )
    return MappingProxyType(texts)


TRANSLATIONS: Mapping[str, Translations] = MappingProxyType(
    {lang: load_translations(lang) for lang in LANGUAGES}
)

#: `TEXTS[lang][id]`: the catalogue of a language as a read-only mapping. An unknown id
#: raises KeyError, as the dictionaries did before the catalogues.
TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {lang: _as_mapping(TRANSLATIONS[lang]) for lang in LANGUAGES}
)


def _known(lang: str | None) -> str:
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def gettext(lang: str, msgid: str) -> str:
    """The text of `msgid` in `lang` (an unknown id comes back as itself, like gettext)."""
    return TRANSLATIONS[_known(lang)].gettext(msgid)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    """The form of a counted text for `n` by the language's plural rule (`Plural-Forms`)."""
    return TRANSLATIONS[_known(lang)].ngettext(singular, plural, n)


def text_for(lang: str, prefix: str, value: Any) -> str:
    """The label of a domain value (`prefix` + value, see FAMILIES), or the value itself when
    the catalogue has none, so an unforeseen value shows as what it is, not as an id."""
    msgid = f"{prefix}{value}"
    return TEXTS[_known(lang)].get(msgid, "" if value is None else str(value))


# -- dates and numbers (Babel, CLDR) -------------------------------------------------------------


def _cldr_patterns(locale: Locale) -> dict[str, str]:
    """The locale's own medium date and short/medium time, joined by its date-time pattern."""
    date = locale.date_formats["medium"].pattern
    join = str(locale.datetime_formats["medium"])
    return {
        "date": date,
        "minutes": join.replace("{1}", date).replace("{0}", locale.time_formats["short"].pattern),
        "seconds": join.replace("{1}", date).replace("{0}", locale.time_formats["medium"].pattern),
    }


#: Date and time patterns (CLDR syntax) per language and style. German uses the locale's own
#: patterns (05.03.2026, 14:07). English keeps ISO 8601 order (2026-03-05 14:07), unambiguous
#: for readers anywhere, where CLDR's "en" would be US style (Mar 5, 2026, 2:07 PM). The chart
#: styles label time buckets on the DPO console (`hour`, `day`) and their axes (`*_axis`).
DATE_PATTERNS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "de": {
            **_cldr_patterns(LOCALES["de"]),
            "hour": "dd.MM. HH:00",
            "day": "dd.MM.y",
            "hour_axis": "dd.MM. HH 'h'",
            "day_axis": "dd.MM.",
        },
        "en": {
            "date": "yyyy-MM-dd",
            "minutes": "yyyy-MM-dd HH:mm",
            "seconds": "yyyy-MM-dd HH:mm:ss",
            "hour": "MM-dd HH:00",
            "day": "yyyy-MM-dd",
            "hour_axis": "MM-dd HH:00",
            "day_axis": "MM-dd",
        },
    }
)


def format_datetime(
    value: datetime, lang: str, style: str = "minutes", *, utc: bool = False
) -> str:
    """A UTC time as the language writes it (`style` from DATE_PATTERNS); `utc` appends the
    zone for pages whose readers may sit in another one."""
    lang = _known(lang)
    text = dates.format_datetime(
        value, DATE_PATTERNS[lang][style], tzinfo=UTC, locale=LOCALES[lang]
    )
    return f"{text} UTC" if utc else text


#: The zone a customer's times are shown in when their preferences name none: where the
#: German pages are read, and UTC for the English ones, whose readers may sit anywhere.
DEFAULT_ZONES: Mapping[str, str] = MappingProxyType({"de": "Europe/Berlin", "en": "UTC"})


def customer_zone(lang: str, preferred: str | None) -> ZoneInfo:
    """The zone a customer reads times in: their preferences' zone, else the language's
    default (`DEFAULT_ZONES`). A name the system no longer knows falls back the same way."""
    for name in (preferred, DEFAULT_ZONES[_known(lang)]):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def format_local_datetime(
    value: datetime, lang: str, zone: ZoneInfo, style: str = "minutes"
) -> str:
    """A UTC time in the reader's zone, always labelled with it (MEZ, MESZ, UTC, -0500...),
    so a time is never read in the wrong zone."""
    lang = _known(lang)
    pattern = DATE_PATTERNS[lang][style] + " z"
    return dates.format_datetime(value, pattern, tzinfo=zone, locale=LOCALES[lang])


def country_name(code: str | None, lang: str) -> str:
    """The name of an ISO 3166 country code in the language (DE: Deutschland, Germany); an
    unknown code stays as it is."""
    if not code:
        return ""
    return LOCALES[_known(lang)].territories.get(code.upper(), code)


def format_number(value: float | int, lang: str, decimals: int | None = None) -> str:
    """A number with the language's separators (1.234,5 / 1,234.5); `decimals` fixes the
    fraction digits (a share in percent: 12,5), else the locale's default applies."""
    lang = _known(lang)
    pattern = None if decimals is None else "#,##0" + ("." + "0" * decimals if decimals else "")
    return numbers.format_decimal(value, format=pattern, locale=LOCALES[lang])


# -- Jinja2 --------------------------------------------------------------------------------------


def _render_lang(context: Context) -> str:
    """The language of the page being rendered: every page context carries `lang`."""
    return _known(context.get("lang"))


@pass_context
def _jinja_gettext(context: Context, msgid: str) -> str:
    return gettext(_render_lang(context), msgid)


@pass_context
def _jinja_ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return ngettext(_render_lang(context), singular, plural, n)


@pass_context
def _jinja_text_for(context: Context, prefix: str, value: Any) -> str:
    return text_for(_render_lang(context), prefix, value)


@pass_context
def _jinja_num(context: Context, value: float | int, decimals: int | None = None) -> str:
    return format_number(value, _render_lang(context), decimals)


def jinja_environment(directory: Path) -> Environment:
    """The template environment of the pages: autoescaping as Litestar's default, plus
    `jinja2.ext.i18n` whose `_`/`gettext`/`ngettext` translate into the language of the
    page being rendered. The callables read `lang` from the render context, so concurrent
    requests in different languages never share an installed translation."""
    env = Environment(
        loader=FileSystemLoader(directory), autoescape=True, extensions=["jinja2.ext.i18n"]
    )
    # Why the ignore below: jinja2.ext.i18n adds this method to the Environment at runtime
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_jinja_gettext, ngettext=_jinja_ngettext, newstyle=False
    )
    env.globals["text_for"] = _jinja_text_for
    env.globals["num"] = _jinja_num
    return env
