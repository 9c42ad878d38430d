"""Every `tresor` subcommand, run with arguments that parse but name nothing that exists
(a client, a recipient, a revision, a month), answers with exit 0 or one `error:` line
and a non-zero exit, on both databases: no exception escapes `main` (in the installed
command that would be a traceback), and none reaches its last-resort handler, which would
print an exception's class name instead of saying what is wrong."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from api.cli import build_parser, main
from tests.api.test_cli_manners import _leaves
from vault.crypto import LocalKeyring
from vault.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
#: Long-running commands (they serve until stopped); `serve` on a busy port and its bad
#: options are covered by tests/api/test_cli_manners.py.
RUNS_UNTIL_STOPPED = {("serve",), ("jobs",)}
#: Values for required options that parse but are wrong or name nothing.
OPTION_VALUES = {
    "--before": "1999-13",
    "--target": "https://203.0.113.9/hook",
    "--subscribe": "no.such.event",
    "--since": "2026-01-01",
}
#: The last-resort handler's line: `error: SomeError: ...` (a class name first).
LAST_RESORT = re.compile(r"^error: [A-Z][A-Za-z]*(Error|Exception): ")


def _wrong_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommand's required arguments, each given a value that names nothing (and
    `--nice 0` where the command has it)."""
    args: list[str] = []
    for action in parser._actions:
        if not action.option_strings and action.dest != "help":
            args.append("no-such-name")
        elif action.required:
            option = action.option_strings[-1]
            value = action.choices[0] if action.choices else OPTION_VALUES[option]
            args += [option, str(value)]
        elif "--nice" in action.option_strings:
            args += ["--nice", "0"]  # in-process: the test process keeps its priority
    return args


CASES = [
    (path, _wrong_arguments(parser))
    for path, parser in _leaves(build_parser())
    if path not in RUNS_UNTIL_STOPPED
]


@pytest.fixture
def initialised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> None:
    """A keyring and a database (both backends) the commands run against."""
    for key in [k for k in os.environ if k.startswith("TRESOR_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TRESOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRESOR_POLICIES", str(ROOT / "policies"))
    monkeypatch.setenv("TRESOR_DATABASE_URL", db_url)
    (tmp_path / "data").mkdir(exist_ok=True)
    LocalKeyring.create(Settings.from_env().keyring_path)


def test_every_subcommand_answers_wrong_names_with_one_error_line(
    initialised: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each subcommand with arguments naming nothing: exit 0, or one `error:` line that
    says what is wrong (not an exception's class name) with a non-zero exit."""
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    failures = []
    for path, args in CASES:
        try:
            code = main([*path, *args])
        except SystemExit as exc:  # argparse's own refusals
            code = int(exc.code or 0)
        except Exception as exc:  # noqa: BLE001 - collected: every subcommand is checked
            failures.append(f"{' '.join(path)}: {type(exc).__name__} escaped main")
            continue
        err = capsys.readouterr().err.strip()
        if code == 0:
            continue
        lines = err.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: ") or LAST_RESORT.match(lines[0]):
            failures.append(f"{' '.join(path)} {' '.join(args)} -> {code}: {err!r}")
    assert failures == []
    assert len(CASES) >= 30
