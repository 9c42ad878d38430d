"""The `tresor` command's manners: `--version`, help that explains every subcommand, one
`error:` line with exit 2 for every bad argument or setting (never a traceback), `--json`,
`db current` / `db history`, and `serve` refusing a busy port before anything else."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from api.cli import build_parser, main
from vault.crypto import LocalKeyring
from vault.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
TRESOR = Path(sys.executable).parent / "tresor"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env.update(TRESOR_DATA_DIR=str(data_dir), TRESOR_POLICIES=str(ROOT / "policies"), **extra)
    return env


def _tresor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRESOR), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable subcommand (a parser without subcommands of its own) and its path."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


LEAVES = sorted(path for path, _ in _leaves(build_parser()))


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Settings:
    """In-process `tresor` calls against a migrated database (both backends) with a keyring."""
    for key in [k for k in os.environ if k.startswith("TRESOR_")]:
        monkeypatch.delenv(key)
    data = tmp_path / "cli-data"
    data.mkdir()
    monkeypatch.setenv("TRESOR_DATA_DIR", str(data))
    monkeypatch.setenv("TRESOR_POLICIES", str(ROOT / "policies"))
    monkeypatch.setenv("TRESOR_DATABASE_URL", db_url)
    settings = Settings.from_env()
    LocalKeyring.create(settings.keyring_path)
    return settings


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- version and help ----------------------------------------------------------------------


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    """`tresor --version` prints the one version string importlib.metadata knows."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tresor {metadata.version('tresor')}"


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_subcommand_explains_itself(path: tuple[str, ...]) -> None:
    """Each subcommand's help has a description, every option's default and, where the
    command reads any, the TRESOR_* variables with their defaults."""
    parser = dict(_leaves(build_parser()))[path]
    text = parser.format_help()
    assert parser.description and parser.description.strip(), path
    for action in parser._actions:
        shows = action.default not in (None, False, [], argparse.SUPPRESS)
        if shows and action.option_strings:
            assert f"(default: {action.default})" in " ".join(text.split()), (path, action.dest)
    if path != ("openapi",):
        assert "environment (read when the command runs):" in text
        assert "TRESOR_DATA_DIR" in text


# --- bad input: one line, exit 2, never a traceback ----------------------------------------


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_an_unknown_option_is_one_error_line(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every subcommand answers an unknown option (or, first, its missing arguments) with
    one `error:` line pointing to the help, and exit 2."""
    with pytest.raises(SystemExit) as info:
        main([*path, "--no-such-option"])
    assert info.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--no-such-option" in line or "arguments are required" in line
    assert line.endswith("--help`)")


@pytest.mark.parametrize(
    ("args", "extra_env", "says"),
    [
        (("audit", "export", "--since", "yesterday"), {}, "not an ISO 8601"),
        (("audit", "export", "--since", "2026-02-01", "--until", "2026-01-01"), {}, "not before"),
        (("audit", "verify", "--public-key", "/nonexistent.pem"), {}, "No such file"),
        (("db", "upgrade", "nonsense"), {}, "nonsense"),
        (("keys", "status"), {"TRESOR_PORT": "abc"}, "TRESOR_PORT must be a whole number"),
        (("clients", "create", "shop", "--role", "root"), {}, "invalid choice"),
        (("clients", "unused", "--days", "soon"), {}, "invalid int value"),
        (("clients", "update", "shop", "--rate", "5/fortnight"), {}, "bad rate"),
        (("recipients", "replay", "x", "--since", "last week"), {}, "not an ISO 8601"),
        (("serve", "--port", "http"), {}, "invalid int value"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_bad_input_is_one_error_line_in_the_real_command(
    tmp_path: Path, args: tuple[str, ...], extra_env: dict[str, str], says: str
) -> None:
    """The installed `tresor` answers each of the issue's bad inputs with exit 2 and one
    `error:` line naming the problem, and prints no traceback."""
    data = tmp_path / "data"
    assert _tresor(_env(data), "init").returncode == 0
    result = _tresor(_env(data, **extra_env), *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert says in _one_error_line(result.stderr)
    assert result.stdout == ""


def test_every_bad_variable_is_named_in_one_message() -> None:
    """Settings validation reports all bad variables at once and never echoes a value."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {
                "TRESOR_PORT": "80a80",
                "TRESOR_DOI_HOURS": "-3",
                "TRESOR_SEAL_INTERVAL": "fast",
                "TRESOR_KEK_PROVIDER": "s3cret-hsm",
                "TRESOR_TRUSTED_PROXIES": "10.0.0.0/8",
            }
        )
    message = str(info.value)
    for name in (
        "TRESOR_PORT",
        "TRESOR_DOI_HOURS",
        "TRESOR_SEAL_INTERVAL",
        "TRESOR_KEK_PROVIDER",
    ):
        assert name in message
    assert len(info.value.problems) == 4
    assert "80a80" not in message and "s3cret-hsm" not in message and "fast" not in message


def test_good_variables_are_typed() -> None:
    """Numbers given as text become numbers; empty means the default."""
    settings = Settings.from_env({"TRESOR_PORT": "9001", "TRESOR_SEAL_INTERVAL": "0.5"})
    assert settings.port == 9001 and settings.seal_interval == 0.5
    assert Settings.from_env({"TRESOR_PORT": ""}).port == 8000


def test_two_bad_variables_stop_the_cli_in_one_line(tmp_path: Path) -> None:
    """The CLI names both bad variables in its one error line, before opening anything."""
    result = _tresor(
        _env(tmp_path / "never", TRESOR_PORT="abc", TRESOR_DB_POOL_SIZE="many"), "keys", "status"
    )
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "TRESOR_PORT" in line and "TRESOR_DB_POOL_SIZE" in line
    assert not (tmp_path / "never").exists()


def test_serve_refuses_a_busy_port_before_anything_else(tmp_path: Path) -> None:
    """`serve` on a taken port exits 2 at once: no keyring is needed to learn that, nothing
    is created and it never claims to be serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "data"
        result = _tresor(_env(data), "serve", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in _one_error_line(result.stderr)
    assert "serving" not in result.stdout and not data.exists()


# --- db current / history ------------------------------------------------------------------


def test_db_history_lists_every_migration_oldest_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`db history --json` chains each revision to the one before it, from the base."""
    assert main(["db", "history", "--json"]) == 0
    revisions = json.loads(capsys.readouterr().out)
    assert revisions[0]["down_revision"] is None
    for before, after in zip(revisions, revisions[1:], strict=False):
        assert after["down_revision"] == before["revision"]
    assert main(["db", "history"]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith(f"{revisions[-2]['revision']} -> {revisions[-1]['revision']}: ")
    )


def test_db_current_reports_head_on_a_migrated_database(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a migrated database (both backends) `db current` names the head and says so."""
    assert main(["db", "history", "--json"]) == 0
    head = json.loads(capsys.readouterr().out)[-1]["revision"]
    assert main(["db", "current", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "current": [head],
        "head": head,
        "at_head": True,
    }
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip().endswith(f": {head} (at head)")


def test_db_current_on_an_empty_database_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any migration `db current` lists none and points to `db upgrade`."""
    for key in [k for k in os.environ if k.startswith("TRESOR_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TRESOR_DATA_DIR", str(tmp_path / "fresh"))
    assert main(["db", "current", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["current"] == []
    assert main(["db", "current"]) == 0
    assert "run `tresor db upgrade`" in capsys.readouterr().out


# --- --json --------------------------------------------------------------------------------


def test_clients_list_json_and_header(
    cli_env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`clients list --json` gives each client as fields without any key; a terminal gets a
    header line, a pipe does not."""
    argv = ["clients", "create", "shop", "--role", "lookup", "--purpose", "order.delivery"]
    assert main(argv) == 0
    key = capsys.readouterr().out.splitlines()[-1]
    assert main(["clients", "list", "--json"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out)
    assert [(r["name"], r["role"], r["purposes"], r["revoked_at"]) for r in rows] == [
        ("shop", "lookup", ["order.delivery"], None)
    ]
    assert key not in out
    assert main(["clients", "list"]) == 0
    assert capsys.readouterr().out.startswith("shop\t")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["clients", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("name\trole\tpurposes\t")


def test_keys_status_json(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys status --json` lists each KEK version with its DEK count and which is active."""
    assert main(["keys", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"version": 1, "active": True, "location": None, "deks": 0, "retained_field_keys": 0}
    ]


def test_recipients_list_json(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """`recipients list --json` is a JSON array (empty on a fresh vault)."""
    assert main(["recipients", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("subcommand", [("upgrade",), ("current",)])
def test_db_commands_on_an_unreachable_database_say_so_in_one_line(
    subcommand: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the database refusing connections `db upgrade` and `db current` print one line
    naming where storage was looked for, without its password, and exit non-zero."""
    for key in [k for k in os.environ if k.startswith("TRESOR_")]:
        monkeypatch.delenv(key)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TRESOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRESOR_POLICIES", str(ROOT / "policies"))
    monkeypatch.setenv(
        "TRESOR_DATABASE_URL", f"postgresql+asyncpg://tresor:s3cret-pw@127.0.0.1:{port}/vault"
    )
    assert main(["db", *subcommand]) == 1
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert (
        f"storage is unavailable at postgresql+asyncpg://tresor:***@127.0.0.1:{port}/vault" in line
    )
    assert "s3cret-pw" not in captured.err + captured.out
    assert "ConnectionRefusedError" not in line
