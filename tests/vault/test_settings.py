"""Settings read from the environment in one place, including what `tresor serve` hands
its worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.setting_values import listening_url
from vault.settings import Settings, SettingsError


def test_the_process_settings_serve_passes_to_its_workers_are_read_here():
    """TRESOR_INLINE_JOBS ("1" by default) and PROMETHEUS_MULTIPROC_DIR (unset: none) come
    from the environment through `Settings.from_env` like every other setting."""
    unset = Settings.from_env({})
    assert unset.inline_jobs is True and unset.metrics_multiproc_dir is None
    workers = Settings.from_env(
        {"TRESOR_INLINE_JOBS": "0", "PROMETHEUS_MULTIPROC_DIR": "/run/tresor/metrics"}
    )
    assert workers.inline_jobs is False
    assert workers.metrics_multiproc_dir == Path("/run/tresor/metrics")
    assert Settings.from_env({"TRESOR_INLINE_JOBS": "1"}).inline_jobs is True


def test_public_url_follows_the_listening_address_unless_set():
    """Unset, mail links point where `serve` listens (TRESOR_HOST/TRESOR_PORT, a wildcard
    host through loopback); a set TRESOR_PUBLIC_URL is kept as given."""
    assert Settings.from_env({"TRESOR_PORT": "8123"}).public_url == "http://127.0.0.1:8123"
    wildcard = Settings.from_env({"TRESOR_HOST": "0.0.0.0", "TRESOR_PORT": "9000"})  # noqa: S104
    assert wildcard.public_url == "http://127.0.0.1:9000" and not wildcard.public_url_set
    assert listening_url("https", "::", 443) == "https://[::1]:443"
    given = Settings.from_env({"TRESOR_PORT": "8123", "TRESOR_PUBLIC_URL": "https://p.example/"})
    assert given.public_url == "https://p.example" and given.public_url_set


def test_smtp_tls_is_required_for_servers_off_this_machine():
    """Unset TRESOR_SMTP_TLS: STARTTLS (required) for a server elsewhere, TLS for smtps://,
    none for a relay on loopback; a set mode wins and a wrong one is named at start."""
    mode = lambda **env: Settings.from_env(env).smtp_tls  # noqa: E731
    assert mode(TRESOR_SMTP_URL="smtp://mail.example.org:587") == "starttls"
    assert mode(TRESOR_SMTP_URL="smtps://mail.example.org") == "tls"
    assert mode(TRESOR_SMTP_URL="smtp://127.0.0.1:25") == "none"
    assert mode(TRESOR_SMTP_URL="smtp://localhost:25", TRESOR_SMTP_TLS="starttls") == "starttls"
    assert mode(TRESOR_SMTP_URL="smtp://mail.example.org", TRESOR_SMTP_TLS="NONE") == "none"
    with pytest.raises(SettingsError, match="TRESOR_SMTP_TLS"):
        Settings.from_env({"TRESOR_SMTP_TLS": "sometimes"})
