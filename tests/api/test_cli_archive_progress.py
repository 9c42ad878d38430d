"""What `tresor audit archive` and `audit prune` show while they run (issue 19 item 4): a
rich bar with count, rate and ETA in a terminal, a progress line every few seconds in a
log; and Ctrl-C (SIGINT) during an archive leaves a state the next run resumes from."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.api.test_cli_archive import ROOT, _env, _months, _trail, _tresor
from vault.clock import FrozenClock
from vault.context import VaultContext

#: Runs `tresor` (argv[2:]) archiving one event per page, sleeping `<argv[1]>/delay`
#: seconds after each page read (a minute at page `<argv[1]>/hold`) and creating
#: `<argv[1]>/page-N` when page N is read.
SLOW = """
import asyncio, pathlib, sys
signals, argv = pathlib.Path(sys.argv[1]), sys.argv[2:]
import vault.audit.archive as archive
write, rows_of, pages = archive._write_segment, archive.rows_of, []

async def one_per_page(ctx, cut, spool, page, progress, pacing):
    return await write(ctx, cut, spool, 1, progress, pacing)

async def slow(ctx, statement, params):
    rows = await rows_of(ctx, statement, params)
    if statement is archive._PAGE and rows:
        pages.append(1)
        (signals / f"page-{len(pages)}").write_text("")
        hold = int((signals / "hold").read_text())
        await asyncio.sleep(60 if len(pages) == hold else float((signals / "delay").read_text()))
    return rows

archive._write_segment, archive.rows_of = one_per_page, slow
from api.cli import main
sys.exit(main(argv))
"""


def _slow(
    env: dict[str, str], signals: Path, delay: float, *args: str, hold: int = 0
) -> subprocess.Popen[str]:
    signals.mkdir(exist_ok=True)
    (signals / "delay").write_text(str(delay))
    (signals / "hold").write_text(str(hold))
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", SLOW, str(signals), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _in_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `tresor` with its stderr on a pseudo-terminal; (exit status, what it drew)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env={**env, "COLUMNS": "120", "TERM": "xterm"},
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    drawn = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other end is closed: the process is gone
                break
            if not chunk:
                break
            drawn += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=60), drawn.decode("utf-8", "replace")


async def test_archive_and_prune_draw_a_bar_with_count_rate_and_eta_in_a_terminal(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """On a terminal, archive draws rich's bar for its 8 events with count, rate and time
        left, and so does prune for the 8 events it deletes (the CLI's clock is today's, so all
    three months are past a month of retention); no log lines there."""
    await _trail(vault, clock)
    env = _env(vault, TRESOR_ARCHIVE_URL=str(tmp_path))
    status, drawn = _in_a_terminal(env, "audit", "archive", "--before", "2026-04")
    assert status == 0, drawn
    assert "archive audit months" in drawn and "8/8" in drawn and "/s" in drawn
    assert "0:00:00" in drawn  # rich's time-remaining column
    assert "progress task=" not in drawn
    status, drawn = _in_a_terminal(env, "audit", "prune", "--months", "1")
    assert status == 0, drawn
    assert "prune audit months" in drawn and "8/8" in drawn


async def test_off_a_terminal_archive_logs_progress_lines_every_few_seconds(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """An archive of 8 events at one per second, under a pipe: stderr gets progress lines
    (task, count of 8, rate, ETA) every 5 seconds, and stdout the one-line result."""
    await _trail(vault, clock)
    env = _env(vault, TRESOR_ARCHIVE_URL=str(tmp_path / "archive"))
    (tmp_path / "archive").mkdir()
    proc = _slow(env, tmp_path / "signals", 1.0, "audit", "archive", "--before", "2026-04")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("progress ")]
    assert 1 <= len(lines) <= 2, err
    assert lines[0].startswith("progress task=archive audit months done=")
    assert "/8 rate=" in lines[0] and " eta=" in lines[0]
    assert out.startswith("archived 3 months (8 events)")


async def test_ctrl_c_during_an_archive_leaves_a_state_the_next_run_resumes(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """SIGINT while February's segment is being written: exit 130 with the resume hint,
    January archived, February neither recorded nor uploaded, no spool file and no lock
    left; the same command then archives February and March once, and the archive and
    the live table verify as one chain."""
    await _trail(vault, clock)
    target = tmp_path / "archive"
    target.mkdir()
    signals = tmp_path / "signals"
    env = _env(vault, TRESOR_ARCHIVE_URL=str(target))
    # Held at page 5: January's 3 events are archived, February's second is being read.
    proc = _slow(env, signals, 0.0, "audit", "archive", "--before", "2026-04", hold=5)
    deadline = time.monotonic() + 60
    while not (signals / "page-5").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: the work committed so far is kept" in err
    assert await _months(vault) == ["2026-01"]
    assert sorted(p.name for p in target.iterdir()) == ["audit-2026-01.jsonl.gz"]
    assert not (vault.settings.data_dir / "archive-spool").exists()

    done = _tresor(env, "audit", "archive", "--before", "2026-04")  # no --wait: no lock left
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("archived 2 months (5 events)")
    assert await _months(vault) == ["2026-01", "2026-02", "2026-03"]
    checked = _tresor(env, "audit", "verify", "--archive")
    assert checked.returncode == 0, checked.stderr
    assert "8 archived events in 3 segments" in checked.stdout
