"""The purpose catalogue: the starter policies, and every way a bad file is refused with its
line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from vault.catalogue.purposes import (
    Channel,
    CommunicationType,
    LawfulBasis,
    PolicyError,
    load_catalogue,
    parse_catalogue,
)

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
REQUIRED_IDS = {
    "account.service",
    "order.delivery",
    "invoice.postal",
    "newsletter.email",
    "offers.email",
    "offers.sms",
    "offers.phone",
    "offers.post",
    "offers.visit",
    "offers.social",
    "incident.notice",
}

# Two valid purposes; each bad case below changes one line and names where that line is.
GOOD = """\
version = "2026-11-01"

[[purpose]]
id = "shop.service"
title = { de = "Service", en = "Service" }
lawful_basis = "contract"
fields = ["email", "name"]
channel = "email"
communication_type = "service"
double_opt_in = false
retention_after_end_days = 30
data_use = "essential.service"

[[purpose]]
id = "news.email"
title = { de = "Neuigkeiten", en = "News" }
lawful_basis = "consent"
fields = ["email"]
channel = "email"
communication_type = "editorial"
default_duration_days = 365
double_opt_in = true
retention_after_end_days = 30
data_use = "marketing.communications.email"
"""
LINES = GOOD.splitlines()
SECOND_ID_LINE = LINES.index('id = "news.email"') + 1  # 1-based


def _replace_in_second(old: str, new: str) -> str:
    """GOOD with one line of the second purpose replaced (or removed when `new` is empty)."""
    start = SECOND_ID_LINE - 1
    index = LINES.index(old, start)
    lines = list(LINES)
    if new:
        lines[index] = new
    else:
        del lines[index]
    return "\n".join(lines) + "\n"


def _error(text: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_catalogue(text, "/etc/tresor/purposes.toml")
    return str(info.value)


# --- the starter catalogue -------------------------------------------------------------


def test_starter_catalogue_has_exactly_the_required_purposes():
    """policies/purposes.toml loads and defines exactly the eight required purposes."""
    catalogue = load_catalogue(POLICIES)
    assert set(catalogue.purposes) == REQUIRED_IDS
    assert catalogue.version


@pytest.mark.parametrize("purpose_id", sorted(REQUIRED_IDS))
def test_every_starter_purpose_is_complete(purpose_id: str):
    """Each starter purpose has German and English titles, a basis, fields, channel, type, retention
    and data use."""
    p = load_catalogue(POLICIES).purposes[purpose_id]
    assert p.title("de") and p.title("en") and p.title_de != p.title_en
    assert isinstance(p.lawful_basis, LawfulBasis)
    assert p.fields
    assert isinstance(p.channel, str)
    assert isinstance(p.communication_type, CommunicationType)
    assert p.retention_after_end >= timedelta(0)
    assert p.data_use and "." in p.data_use
    if p.lawful_basis is LawfulBasis.CONSENT:
        assert p.default_duration and p.default_duration > timedelta(0)


def test_newsletter_is_double_opt_in_editorial_consent():
    """newsletter.email is an editorial e-mail consent proven by double opt-in."""
    p = load_catalogue(POLICIES).purposes["newsletter.email"]
    assert p.lawful_basis is LawfulBasis.CONSENT
    assert p.double_opt_in and p.channel == Channel.EMAIL and "email" in p.fields
    assert p.communication_type is CommunicationType.EDITORIAL
    assert p.data_use == "marketing.communications.email"


def test_phone_offers_need_explicit_consent():
    """offers.phone needs express, separate consent (UWG §7) and keeps proof about five years."""
    p = load_catalogue(POLICIES).purposes["offers.phone"]
    assert p.lawful_basis is LawfulBasis.CONSENT and p.explicit_consent
    assert p.channel == Channel.PHONE and p.communication_type is CommunicationType.COMMERCIAL
    assert p.retention_after_end >= timedelta(days=5 * 365)


def test_invoice_is_a_legal_obligation_with_long_retention():
    """invoice.postal rests on a legal obligation and is retained for the ten statutory years."""
    p = load_catalogue(POLICIES).purposes["invoice.postal"]
    assert p.lawful_basis is LawfulBasis.LEGAL_OBLIGATION
    assert p.retention_after_end >= timedelta(days=10 * 365)
    assert "postal_address" in p.fields and "email" not in p.fields


def test_incident_notice_is_a_calamity():
    """incident.notice is a calamity communication."""
    p = load_catalogue(POLICIES).purposes["incident.notice"]
    assert p.communication_type is CommunicationType.CALAMITY


def test_the_good_fixture_parses():
    """The two-purpose catalogue the bad cases start from is itself valid."""
    catalogue = parse_catalogue(GOOD)
    assert set(catalogue.purposes) == {"shop.service", "news.email"}


# --- invalid catalogues ----------------------------------------------------------------


def test_broken_toml_names_file_and_line():
    """A TOML syntax error names the file and the broken line."""
    text = _replace_in_second('channel = "email"', 'channel = "email')
    line = text.splitlines().index('channel = "email') + 1
    msg = _error(text)
    assert "/etc/tresor/purposes.toml" in msg and "TOML" in msg
    assert f"line {line}" in msg


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        pytest.param(
            'data_use = "marketing.communications.email"',
            "",
            ["data_use", "missing"],
            id="missing-key",
        ),
        pytest.param(
            "retention_after_end_days = 30",
            'retention_after_end_days = "30"',
            ["retention_after_end_days", "int"],
            id="wrong-type",
        ),
        pytest.param(
            "double_opt_in = true",
            "double_opt_in = 1",
            ["double_opt_in", "bool"],
            id="int-for-bool",
        ),
        pytest.param(
            'lawful_basis = "consent"',
            'lawful_basis = "vibes"',
            ["lawful_basis", "vibes"],
            id="unknown-basis",
        ),
        pytest.param(
            'channel = "email"', 'channel = "fax"', ["channel", "fax"], id="unknown-channel"
        ),
        pytest.param(
            'communication_type = "editorial"',
            'communication_type = "spam"',
            ["communication_type", "spam"],
            id="unknown-type",
        ),
        pytest.param(
            'fields = ["email"]',
            'fields = ["email", "iban"]',
            ["field", "iban"],
            id="unknown-field",
        ),
        pytest.param(
            'channel = "email"', 'channel = "sms"', ["double_opt_in"], id="double-opt-in-on-sms"
        ),
        pytest.param(
            "default_duration_days = 365",
            "",
            ["default_duration_days"],
            id="consent-without-duration",
        ),
        pytest.param(
            "default_duration_days = 365",
            "default_duration_days = 0",
            ["default_duration_days"],
            id="zero-duration",
        ),
        pytest.param(
            "double_opt_in = true",
            'double_opt_in = true\ncolour = "red"',
            ["colour", "unknown"],
            id="unknown-key",
        ),
        pytest.param('fields = ["email"]', "fields = []", ["fields"], id="empty-fields"),
        pytest.param(
            'data_use = "marketing.communications.email"',
            'data_use = "Marketing Stuff"',
            ["data_use"],
            id="bad-data-use",
        ),
        pytest.param(
            'data_use = "marketing.communications.email"',
            'data_use = "marketing.communications.email"\nbrands = ["Tresor Outlet"]',
            ["brands"],
            id="bad-brands",
        ),
        pytest.param(
            'data_use = "marketing.communications.email"',
            'data_use = "marketing.communications.email"\nbrands = []',
            ["brands"],
            id="empty-brands",
        ),
    ],
)
def test_invalid_purpose_names_file_line_purpose_and_key(old: str, new: str, words: list[str]):
    """Each invalid purpose is refused with a message naming the file, the purpose's line, the
    purpose and the key."""
    msg = _error(_replace_in_second(old, new))
    assert "/etc/tresor/purposes.toml" in msg
    assert f"line {SECOND_ID_LINE}:" in msg
    assert "news.email" in msg
    for word in words:
        assert word in msg


def test_double_opt_in_on_a_contract_is_refused():
    """double_opt_in is refused on a purpose that is not a consent."""
    text = GOOD.replace("double_opt_in = false", "double_opt_in = true", 1)
    msg = _error(text)
    assert "shop.service" in msg and "double_opt_in" in msg and "line 4:" in msg


def test_duplicate_id_names_the_second_occurrence():
    """A duplicate purpose id is refused, pointing at the line of the duplicate, not the
    original."""
    text = GOOD.replace('id = "news.email"', 'id = "shop.service"')
    msg = _error(text)
    assert "duplicate" in msg and "shop.service" in msg
    assert f"line {SECOND_ID_LINE}:" in msg


def test_purpose_without_id_names_its_table_line():
    """A purpose missing its id is named by position and by its [[purpose]] line."""
    text = _replace_in_second('id = "news.email"', "")
    header_line = SECOND_ID_LINE - 1
    msg = _error(text)
    assert "'id'" in msg and "missing" in msg and f"line {header_line}:" in msg


def test_purpose_that_is_not_a_table_is_refused():
    """A `purpose` array of plain values is a PolicyError, not a crash."""
    msg = _error('version = "1"\npurpose = ["news.email"]\n')
    assert "/etc/tresor/purposes.toml" in msg and "purpose" in msg


@pytest.mark.parametrize(
    ("text", "word"),
    [
        pytest.param(GOOD.replace('version = "2026-11-01"', ""), "version", id="no-version"),
        pytest.param('version = "1"\n', "purpose", id="no-purposes"),
        pytest.param(GOOD + 'extra = "x"\n', "extra", id="key-after-last-table-belongs-to-it"),
        pytest.param('colour = "red"\n' + GOOD, "colour", id="unknown-top-level-key"),
    ],
)
def test_bad_top_level_is_refused(text: str, word: str):
    """A missing version, no purposes or an unknown top-level key is refused naming the file."""
    msg = _error(text)
    assert "/etc/tresor/purposes.toml" in msg and word in msg


def test_missing_file_is_a_policy_error(tmp_path: Path):
    """A policies directory without purposes.toml is a PolicyError naming the path."""
    with pytest.raises(PolicyError, match="purposes.toml"):
        load_catalogue(tmp_path)


# --- the CLI refuses to serve a bad catalogue ------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_stops_on_a_broken_catalogue(tmp_path: Path):
    """`tresor serve` with a broken purposes.toml exits non-zero at once, naming the catalogue error
    and its line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env.update(TRESOR_DATA_DIR=str(tmp_path / "data"), TRESOR_POLICIES=str(POLICIES))
    init = subprocess.run(
        [sys.executable, "-m", "api.cli", "init"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr

    bad = tmp_path / "bad-policies"
    bad.mkdir()
    text = _replace_in_second('channel = "email"', 'channel = "carrier_pigeon"')
    (bad / "purposes.toml").write_text(text, encoding="utf-8")
    env["TRESOR_POLICIES"] = str(bad)
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(_free_port())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("tresor serve started although the purpose catalogue is broken")
    assert proc.returncode != 0
    assert "invalid purpose catalogue" in err
    assert f"line {SECOND_ID_LINE}" in err and "channel" in err
    assert "Traceback" not in err
    assert "serving" not in out
