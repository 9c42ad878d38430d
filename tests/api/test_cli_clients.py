"""`tresor clients`: quotas at creation and by `update`, `rotate-key` with a grace period,
`list` with key creation and last use, `unused` for clean-up; each change audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from api.cli import main
from tests.api import test_cli
from tests.api.test_cli import _audit_actors, _authenticate
from vault.settings import Settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path, db_url: str) -> Settings:
    """The environment of `tests/api/test_cli.py` for in-process `tresor` calls."""
    return test_cli.cli_env.__wrapped__(monkeypatch, tmp_path, db_url)


def _lines(capsys) -> list[list[str]]:
    return [line.split("\t") for line in capsys.readouterr().out.splitlines()]


def test_quotas_are_set_at_creation_changed_by_update_and_listed(cli_env: Settings, capsys):
    """`--rate` and `--daily-lookups` show in `clients list`; `update` changes one and
    lifts the other with 0 / off; a bad rate is an error that changes nothing."""
    assert (
        main(
            [
                "clients",
                "create",
                "shop",
                "--role",
                "lookup",
                "--purpose",
                "order.delivery",
                "--rate",
                "200/s",
                "--daily-lookups",
                "1000000",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["clients", "list"]) == 0
    assert _lines(capsys)[0][6:] == ["rate 200/s", "lookups/day 1000000"]
    assert main(["clients", "update", "shop", "--rate", "50/m", "--daily-lookups", "0"]) == 0
    assert capsys.readouterr().out.strip() == "updated client shop"
    assert main(["clients", "list"]) == 0
    assert _lines(capsys)[0][6:] == ["rate 50/m", "lookups/day -"]
    assert main(["clients", "update", "shop", "--rate", "lots"]) == 2
    assert "bad rate" in capsys.readouterr().err
    assert main(["clients", "update", "shop"]) == 2
    actions = [a for _, _, a in _audit_actors(cli_env)]
    assert actions.count("admin:client:update") == 1


def test_rotate_key_prints_the_new_key_last_and_keeps_the_old_for_the_grace(
    cli_env: Settings, capsys
):
    """The new key is the last line; both keys work during the grace; `--grace 0` ends the
    old one at once; the rotation is audited."""
    assert main(["clients", "create", "crm", "--role", "writer"]) == 0
    old = capsys.readouterr().out.splitlines()[-1]
    assert main(["clients", "rotate-key", "crm", "--grace", "7d"]) == 0
    out = capsys.readouterr().out.splitlines()
    new = out[-1]
    assert new.startswith("tresor_") and new != old and "stays valid until" in out[0]
    assert _authenticate(cli_env, old) is not None
    assert _authenticate(cli_env, new) is not None
    assert main(["clients", "rotate-key", "crm", "--grace", "0"]) == 0
    newest = capsys.readouterr().out.splitlines()[-1]
    assert _authenticate(cli_env, new) is None and _authenticate(cli_env, newest) is not None
    assert main(["clients", "rotate-key", "crm", "--grace", "1y"]) == 2
    assert "bad duration" in capsys.readouterr().err
    actions = [a for _, _, a in _audit_actors(cli_env)]
    assert actions.count("admin:client:rotate_key") == 2


def test_list_shows_last_use_and_unused_lists_idle_keys(cli_env: Settings, capsys):
    """After a key is used, `list` shows when; `unused --days 1` lists only the key never
    used since its creation once a day has passed (here: none yet)."""
    assert main(["clients", "create", "crm", "--role", "writer"]) == 0
    key = capsys.readouterr().out.splitlines()[-1]
    assert main(["clients", "create", "idle", "--role", "writer"]) == 0
    capsys.readouterr()
    assert _authenticate(cli_env, key) is not None
    assert main(["clients", "list"]) == 0
    used = {line[0]: line[5] for line in _lines(capsys)}
    assert used["idle"] == "used never"
    assert used["crm"].startswith(f"used {datetime.now(UTC):%Y-%m-%d}")
    assert main(["clients", "unused", "--days", "1"]) == 0
    assert capsys.readouterr().out.strip() == "no active client left unused for 1 days"


def test_quiet_prints_only_the_key_of_create_and_rotate_key(cli_env: Settings, capsys):
    """With `--quiet` the output is the key and nothing else, so `KEY=$(tresor clients
    create ... --quiet)` sets a working key (the README's quickstart does)."""
    assert main(["clients", "create", "crm", "--role", "writer", "--quiet"]) == 0
    (key,) = capsys.readouterr().out.splitlines()
    assert key.startswith("tresor_") and _authenticate(cli_env, key) is not None
    assert main(["clients", "rotate-key", "crm", "--grace", "0", "--quiet"]) == 0
    (new,) = capsys.readouterr().out.splitlines()
    assert _authenticate(cli_env, new) is not None and _authenticate(cli_env, key) is None


def test_display_name_is_set_at_creation_changed_by_update_and_in_json(cli_env: Settings, capsys):
    """`--display-name` on `create` and `update` sets what customers read; `list --json`
    shows it; "" clears it; each update is audited."""
    assert (
        main(["clients", "create", "shop", "--role", "writer", "--display-name", "Online-Shop"])
        == 0
    )
    capsys.readouterr()
    assert main(["clients", "list", "--json"]) == 0
    assert [c["display_name"] for c in json.loads(capsys.readouterr().out)] == ["Online-Shop"]
    assert main(["clients", "update", "shop", "--display-name", "Webshop"]) == 0
    assert capsys.readouterr().out.strip() == "updated client shop"
    assert main(["clients", "list", "--json"]) == 0
    assert [c["display_name"] for c in json.loads(capsys.readouterr().out)] == ["Webshop"]
    assert main(["clients", "update", "shop", "--display-name", ""]) == 0
    capsys.readouterr()
    assert main(["clients", "list", "--json"]) == 0
    assert [c["display_name"] for c in json.loads(capsys.readouterr().out)] == [None]
    assert main(["clients", "update", "shop", "--display-name", "x" * 101]) == 2
    actions = [a for _, _, a in _audit_actors(cli_env)]
    assert actions.count("admin:client:update") == 2
