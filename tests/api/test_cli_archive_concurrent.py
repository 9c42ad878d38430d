"""Two `tresor audit archive` / `audit prune` processes at once (issue 19), on both
databases: the second exits 75 with one `error:` line and changes nothing, or with
`--wait` runs after the first; a killed holder leaves no lock behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.api.test_cli_archive import ROOT, _env, _lookups, _months, _trail, _tresor
from vault.clock import FrozenClock
from vault.context import VaultContext

#: Runs `tresor` (argv[2:]) pausing inside the archive/prune lock: it creates
#: `<argv[1]>/held` once it holds the lock and goes on when `<argv[1]>/go` exists.
PAUSING = """
import asyncio, pathlib, sys
signals, argv = pathlib.Path(sys.argv[1]), sys.argv[2:]
import vault.audit.archive as archive
import vault.audit.prune as prune

def pausing(inner):
    async def run(*args, **kwargs):
        (signals / "held").write_text("")
        while not (signals / "go").exists():
            await asyncio.sleep(0.05)
        return await inner(*args, **kwargs)
    return run

archive._archive_locked = pausing(archive._archive_locked)
prune._prune_locked = pausing(prune._prune_locked)
from api.cli import main
sys.exit(main(argv))
"""


def _start(env: dict[str, str], *args: str, pause: Path | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "api.cli", *args]
    if pause is not None:
        command = [sys.executable, "-c", PAUSING, str(pause), *args]
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _busy(done: Any) -> None:
    assert done.returncode == 75, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: another `tresor audit archive`")
    assert "--wait" in lines[0]


async def test_a_second_archive_or_prune_exits_busy_and_a_waiting_one_runs_after(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """While one archive holds the lock, a prune and a second archive each exit with 75
    and one `error:` line, archiving and deleting nothing; an archive with `--wait` waits
    for it and then archives only what is left, so every month is archived once."""
    await _trail(vault, clock)
    target = tmp_path / "archive"
    target.mkdir()
    signals = tmp_path / "signals"
    signals.mkdir()
    env = _env(vault, TRESOR_ARCHIVE_URL=str(target))
    first = _start(env, "audit", "archive", "--before", "2026-03", pause=signals)
    started = [first]
    try:
        _wait_for(signals / "held", first)
        _busy(_tresor(env, "audit", "prune", "--months", "1"))
        _busy(_tresor(env, "audit", "archive", "--before", "2026-04"))
        assert await _months(vault) == [] and await _lookups(vault) == 8
        assert list(target.iterdir()) == []

        waiting = _start(env, "audit", "archive", "--before", "2026-04", "--wait", "60", "--json")
        started.append(waiting)
        time.sleep(1.5)
        assert waiting.poll() is None  # held back by the lock, not failed
        (signals / "go").write_text("")
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert "archived 2 months (6 events)" in out
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["months"] == ["2026-03"]
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert await _months(vault) == ["2026-01", "2026-02", "2026-03"]


async def test_a_killed_holder_leaves_no_lock_behind(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """A prune killed (SIGKILL) while it holds the lock: the next archive starts at once
    (the database session or the file lock died with the process) and succeeds."""
    await _trail(vault, clock)
    target = tmp_path / "archive"
    target.mkdir()
    signals = tmp_path / "signals"
    signals.mkdir()
    env = _env(vault, TRESOR_ARCHIVE_URL=str(target))
    holder = _start(env, "audit", "prune", "--months", "1", pause=signals)
    _wait_for(signals / "held", holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.communicate(timeout=60)
    assert holder.returncode == -9

    done = _tresor(env, "audit", "archive", "--before", "2026-03")
    assert done.returncode == 0, done.stderr
    assert await _months(vault) == ["2026-01", "2026-02"]


async def test_a_negative_wait_is_a_usage_error(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """`--wait -1` is one `error:` line and exit status 2, before anything is archived."""
    await _trail(vault, clock)
    env = _env(vault, TRESOR_ARCHIVE_URL=str(tmp_path))
    done = _tresor(env, "audit", "archive", "--before", "2026-03", "--wait", "-1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: --wait -1") and await _months(vault) == []
