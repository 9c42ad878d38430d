"""The gettext catalogues (api/locale) against the code that uses them, and what Babel formats.

The extraction here is the one `make messages-extract` runs (babel.cfg), so a page, a
controller or a domain value that needs a text fails this suite until both catalogues have
it, and a catalogue entry that nothing uses fails it too (pybabel update would retire it).
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import nodes

from api import i18n
from api.app import TEMPLATES
from tests.support.factories import api

ROOT = Path(i18n.__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{(\w*)")


def extracted_ids(root: Path = ROOT) -> dict[str, list[str]]:
    """Every message id the code under `root` uses, with where (file:line), per babel.cfg."""
    with (ROOT / "babel.cfg").open() as fp:
        method_map, options_map = parse_mapping_cfg(fp, str(ROOT / "babel.cfg"))
    found: dict[str, list[str]] = defaultdict(list)
    for filename, lineno, message, _, _ in extract_from_dir(root, method_map, options_map):
        msgid = message[0] if isinstance(message, tuple) else message
        found[msgid].append(f"{filename}:{lineno}")
    return found


def untranslated(ids: dict[str, list[str]]) -> dict[str, list[str]]:
    """The ids (with their uses) that a language's catalogue lacks or leaves empty."""
    return {
        f"{lang}:{msgid}": where
        for lang in i18n.LANGUAGES
        for msgid, where in ids.items()
        if not i18n.TEXTS[lang].get(msgid, "").strip()
    }


def catalogue(lang: str):
    with i18n.catalogue_path(lang).open("rb") as fp:
        return read_po(fp, locale=lang, abort_invalid=True)


@pytest.fixture(scope="module")
def used() -> dict[str, list[str]]:
    return extracted_ids()


def test_every_id_the_code_uses_has_a_text_in_both_catalogues(used):
    """Each id in a template, a `_()`/`ngettext()` call, a `TEXTS[lang]["id"]` read or an id
    family of a domain value has a non-empty German and English text."""
    assert len(used) > 300  # the extraction saw the templates and controllers
    assert untranslated(used) == {}


def test_every_catalogue_entry_is_used(used):
    """No entry is dead: `make messages-update` (pybabel update) would retire it otherwise."""
    for lang in i18n.LANGUAGES:
        assert set(i18n.TEXTS[lang]) - set(used) == set(), lang


def test_a_template_using_an_unknown_id_fails_the_check(tmp_path):
    """The check above catches a page that asks for an id neither catalogue has."""
    pages = tmp_path / "api" / "templates"
    pages.mkdir(parents=True)
    (pages / "new_page.html").write_text(
        '<h1>{{ _("pc_title") }}</h1><p>{{ _("pc_no_such_text") }}</p><p>{{ t.pc_nor_this }}</p>'
    )
    missing = untranslated(extracted_ids(tmp_path))
    assert set(missing) == {
        f"{lang}:{msgid}" for lang in ("de", "en") for msgid in ("pc_no_such_text", "pc_nor_this")
    }
    where = os.path.join("api", "templates", "new_page.html") + ":1"
    assert missing["de:pc_no_such_text"] == [where]


def test_both_catalogues_have_the_same_ids_placeholders_and_plural_forms():
    """A translation keeps every `{placeholder}` of its id (`.format` would fail otherwise),
    no entry is fuzzy (compiling drops those), and counted texts have all forms filled."""
    de, en = catalogue("de"), catalogue("en")
    assert {m.id for m in de if m.id} == {m.id for m in en if m.id}
    for message in de:
        if not message.id:
            continue
        other = en[message.id]
        for entry in (message, other):
            assert not entry.fuzzy, entry.id
            forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            assert all(form.strip() for form in forms), entry.id
        placeholders = {
            frozenset(PLACEHOLDER.findall(form))
            for entry in (message, other)
            for form in (entry.string if isinstance(entry.string, tuple) else (entry.string,))
        }
        assert len(placeholders) == 1, (message.id, placeholders)


def test_every_family_prefix_a_template_composes_is_declared():
    """`text_for("prefix_", value)` in a page names a prefix of `i18n.FAMILIES`, so its
    values are extracted and checked above; a literal prefix keeps that possible."""
    env = i18n.jinja_environment(TEMPLATES)
    prefixes = set()
    for name in env.list_templates():
        tree = env.parse(env.loader.get_source(env, name)[0])
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == "text_for":
                prefix = call.args[0]
                assert isinstance(prefix, nodes.Const), (name, call.lineno)
                prefixes.add(prefix.value)
    assert prefixes and prefixes <= set(i18n.FAMILIES)


def test_done_notices_of_the_privacy_centre_are_a_declared_family():
    """The `?done=` notices the privacy centre accepts all have texts (family `done_`)."""
    from api.privacy import pages as privacy

    assert set(privacy.DONE_NOTICES) <= set(i18n.FAMILIES["done_"])


def test_a_stale_compiled_catalogue_is_not_used(tmp_path, monkeypatch):
    """A `.mo` older than its `.po` (edited, not compiled) is ignored for the `.po` compiled
    in memory; a fresh `.mo` is used as it is; without a `.mo` the `.po` serves; without a
    `.po` the app does not start."""
    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po, mo = folder / "messages.po", folder / "messages.mo"
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)

    def write(text: str) -> None:
        po.write_text(f'msgid ""\nmsgstr ""\n"Language: de\\n"\n\nmsgid "x"\nmsgstr "{text}"\n')

    with pytest.raises(FileNotFoundError):  # no catalogue: the start fails, no bare ids
        i18n.load_translations("de")
    write("alt")
    assert i18n.load_translations("de").gettext("x") == "alt"  # no .mo
    with po.open("rb") as fp, mo.open("wb") as out:
        write_mo(out, read_po(fp, locale="de"))
    assert i18n.load_translations("de").gettext("x") == "alt"  # fresh .mo
    write("neu")
    os.utime(mo, (po.stat().st_mtime - 60, po.stat().st_mtime - 60))
    assert i18n.load_translations("de").gettext("x") == "neu"  # stale .mo is passed over


def test_counted_texts_take_the_plural_form_of_the_language():
    """One minute is „1 Minute“ / "1 minute", more are „Minuten“ / "minutes"."""
    hint = "pc_session_hint"
    assert (
        i18n.ngettext("de", hint, hint, 1)
        .format(minutes=1)
        .endswith("nach 1 Minute ohne Aktivität.")
    )
    assert (
        i18n.ngettext("de", hint, hint, 15)
        .format(minutes=15)
        .endswith("nach 15 Minuten ohne Aktivität.")
    )
    assert (
        i18n.ngettext("en", hint, hint, 1)
        .format(minutes=1)
        .endswith("after 1 minute without activity.")
    )
    assert (
        i18n.ngettext("en", hint, hint, 15)
        .format(minutes=15)
        .endswith("after 15 minutes without activity.")
    )
    assert i18n.TEXTS["en"][hint].endswith(
        "{minutes} minutes without activity."
    )  # mapping reads: plural form


def test_dates_and_numbers_are_formatted_per_language():
    """German dates and decimal commas from CLDR; English in ISO 8601 order."""
    at = datetime(2026, 3, 5, 14, 7, 9, tzinfo=UTC)
    assert i18n.format_datetime(at, "de", utc=True) == "05.03.2026, 14:07 UTC"
    assert i18n.format_datetime(at, "en", utc=True) == "2026-03-05 14:07 UTC"
    assert i18n.format_datetime(at, "de", "seconds") == "05.03.2026, 14:07:09"
    assert i18n.format_datetime(at, "en", "date") == "2026-03-05"
    assert i18n.format_datetime(at, "de", "hour_axis") == "05.03. 14 h"
    assert i18n.format_number(1234.5, "de") == "1.234,5"
    assert i18n.format_number(1234.5, "en") == "1,234.5"
    assert i18n.format_number(100, "de", 1) == "100,0"


def test_one_template_renders_each_language_at_the_same_time():
    """The gettext callables follow each render's `lang`: renders in two threads at once
    never borrow each other's language (no translation is installed globally)."""
    env = i18n.jinja_environment(TEMPLATES)
    template = env.from_string('{{ _("pc_title") }}|{{ text_for("status_", s) }}|{{ num(n) }}')
    results: dict[str, set[str]] = {"de": set(), "en": set()}

    def render(lang: str) -> None:
        for _ in range(300):
            results[lang].add(template.render(lang=lang, s="withdrawn", n=1234.5))

    threads = [threading.Thread(target=render, args=(lang,)) for lang in ("de", "en")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {
        "de": {"Datenschutz-Center|widerrufen|1.234,5"},
        "en": {"Privacy centre|withdrawn|1,234.5"},
    }


async def test_a_page_says_the_same_in_german_and_english_in_different_words(vault):
    """The landing page through the app: the German text from the de catalogue, the English
    one from the en catalogue, each page in one language only."""
    async with api(vault) as http:
        de = (await http.get("/?lang=de")).text
        en = (await http.get("/?lang=en")).text
    assert '<html lang="de">' in de and '<html lang="en">' in en
    assert i18n.TEXTS["de"]["home_text"] in de and i18n.TEXTS["en"]["home_text"] not in de
    assert i18n.TEXTS["en"]["home_text"] in en and i18n.TEXTS["de"]["home_text"] not in en
    assert "Datenschutz-Center für Kundinnen und Kunden" in de
    assert "Privacy centre for customers" in en
