"""`--nice` on the audit trail's long-running commands: the same flag, default and helper
as `keys rotate` and `retention run` (`api.cli_support.yield_cpu`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api import cli_support
from api.cli import main

ROOT = Path(__file__).resolve().parents[2]


class _Reniced(BaseException):
    """Raised by the stand-in for `os.nice`: the command stops before doing any work (and
    the test process keeps its priority)."""


@pytest.fixture
def niced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    for key in [k for k in os.environ if k.startswith("TRESOR_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TRESOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRESOR_POLICIES", str(ROOT / "policies"))
    calls: list[int] = []

    def nice(increment: int) -> int:
        calls.append(increment)
        raise _Reniced

    monkeypatch.setattr(cli_support.os, "nice", nice)
    return calls


@pytest.mark.parametrize(
    "command",
    [
        ["audit", "archive", "--before", "2026-03"],
        ["audit", "prune", "--months", "1"],
        ["audit", "verify"],
        ["audit", "verify", "--archive"],
        ["audit", "export"],
    ],
)
def test_audit_commands_lower_their_priority_by_10_unless_told(
    niced: list[int], tmp_path: Path, command: list[str]
):
    """Each long-running audit command renices itself by 10 before its work, by `--nice N`
    when given, and not at all with `--nice 0`."""
    if command[-1] == "--archive":
        command = [*command, str(tmp_path)]
    if command[1] == "archive":
        command = [*command, "--to", str(tmp_path)]
    with pytest.raises(_Reniced):
        main(command)
    with pytest.raises(_Reniced):
        main([*command, "--nice", "3"])
    assert niced == [10, 3]
    main([*command, "--nice", "0"])  # fails without a vault, but never renices
    assert niced == [10, 3]
