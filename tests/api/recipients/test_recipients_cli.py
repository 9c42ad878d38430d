"""`tresor recipients ...` on both databases: register (secret printed last, once), list,
narrow subscriptions, pause and resume, rotate the secret, list deliveries, replay and
deliver; bad input is an error that changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.cli import main
from tests.conftest import POLICIES
from vault.crypto import LocalKeyring
from vault.settings import Settings

URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Settings:
    """In-process `tresor` calls against a migrated database with a keyring (as
    tests/api/test_cli.py sets them up)."""
    for key in [k for k in os.environ if k.startswith("TRESOR_")]:
        monkeypatch.delenv(key)
    data = tmp_path / "cli-data"
    data.mkdir()
    monkeypatch.setenv("TRESOR_DATA_DIR", str(data))
    monkeypatch.setenv("TRESOR_POLICIES", str(POLICIES))
    monkeypatch.setenv("TRESOR_DATABASE_URL", db_url)
    settings = Settings.from_env()
    LocalKeyring.create(settings.keyring_path)
    return settings


def _out(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


def test_recipient_commands(cli_env: Settings, capsys: pytest.CaptureFixture[str]):
    """The whole life of a recipient at the command line, each step answering as it says."""
    assert (
        main(["clients", "create", "mailer", "--role", "lookup", "--purpose", "order.delivery"])
        == 0
    )
    capsys.readouterr()
    assert main(["recipients", "create", "mailer", "--target", URL]) == 0
    lines = _out(capsys)
    assert lines[-1].startswith("whsec_") and lines[0].startswith("mailer\tclient\twebhook")
    secret = lines[-1]
    assert main(["recipients", "subscribe", "mailer", "--subscribe", "subject.erased"]) == 0
    assert _out(capsys)[-1].endswith("subject.erased:*:received")
    assert main(["recipients", "pause", "mailer"]) == 0
    assert "\tpaused\t" in _out(capsys)[-1]
    assert main(["recipients", "resume", "mailer"]) == 0
    assert "\tactive\t" in _out(capsys)[-1]
    assert main(["recipients", "rotate-secret", "mailer", "--overlap-hours", "2"]) == 0
    rotated = _out(capsys)[-1]
    assert rotated.startswith("whsec_") and rotated != secret
    assert main(["recipients", "list"]) == 0
    assert [line.split("\t")[0] for line in _out(capsys)] == ["mailer"]
    assert main(["recipients", "deliveries", "mailer"]) == 0
    assert _out(capsys) == ["pending=0 delivered=0 failed=0 acked=0"]
    assert main(["recipients", "replay", "mailer", "--since", "2026-01-01T00:00"]) == 0
    assert _out(capsys) == ["queued 0 notices again"]
    assert main(["recipients", "deliver"]) == 0
    assert "delivered 0" in _out(capsys)[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recipients", "create", "mailer", "--target", "ftp://example.com/x"], "url"),
        (["recipients", "create", "ghost", "--target", URL], "no API client"),
        (
            [
                "recipients",
                "create",
                "lettershop",
                "--kind",
                "external",
                "--target",
                URL,
                "--subscribe",
                "subject.vanished",
            ],
            "event type",
        ),
    ],
)
def test_bad_input_is_an_error(cli_env: Settings, capsys, args: list[str], message: str):
    """A bad URL or event type (a usage error, status 2) or an unknown client (status 1)
    ends with a message naming the problem, and no recipient."""
    assert (
        main(["clients", "create", "mailer", "--role", "lookup", "--purpose", "order.delivery"])
        == 0
    )
    capsys.readouterr()
    assert main(args) == (1 if message == "no API client" else 2)
    assert message in capsys.readouterr().err
    assert main(["recipients", "list"]) == 0
    assert _out(capsys) == []
