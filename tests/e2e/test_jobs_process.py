"""`tresor serve` runs the periodic jobs in a process of its own on PostgreSQL (inline on
SQLite); that process seals the workers' events, yields the CPU, and ends with its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import POLICIES
from tests.support.server import TRESOR, free_port, serve
from vault.audit import chain as audit_chain
from vault.context import VaultContext
from vault.settings import Settings


def _children(pid: int) -> list[int]:
    """Child pids of `pid`, started by any of its threads (Linux /proc)."""
    return sorted(
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    )


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")


def _alive(pid: int) -> bool:
    """Running (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _unsealed(data_dir: Path, url: str) -> int:
    settings = Settings(data_dir=data_dir, database_url=url, policies_dir=POLICIES)

    async def count() -> int:
        ctx = VaultContext.open(settings)
        try:
            return await audit_chain.unsealed_count(ctx)
        finally:
            await ctx.close()

    return asyncio.run(count())


def _on_postgres(postgres) -> dict[str, str]:
    """An emptied test database and a fast sealer, as settings for `serve`."""
    asyncio.run(postgres.truncate())
    return {
        "TRESOR_DATABASE_URL": postgres.url,
        "TRESOR_SEAL_INTERVAL": "0.05",
        "TRESOR_RETENTION_INTERVAL": "0",
    }


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_on_postgresql_a_niced_jobs_process_seals_and_dies_with_a_killed_server(
    tmp_path: Path, postgres
):
    """The server's only child is `tresor jobs` at nice +10; it seals what the server
    appended, and after SIGKILL of the server it seals the rest and exits by itself."""
    with serve(tmp_path, **_on_postgres(postgres)) as served:
        assert served.proc is not None
        (jobs,) = _children(served.proc.pid)
        assert _cmdline(jobs)[-4:-2] == ["api.cli", "jobs"]
        # +10 on the server's own nice value, at most 19 (the test run may have been started
        # niced; the suite keeps its own priority: tests/conftest.py `_keeps_cpu_priority`).
        server_nice = os.getpriority(os.PRIO_PROCESS, served.proc.pid)
        assert server_nice == os.getpriority(os.PRIO_PROCESS, 0)  # `serve` itself: not niced
        niced = min(server_nice + 10, 19)
        assert _wait_for(lambda: os.getpriority(os.PRIO_PROCESS, jobs) == niced)  # once started
        writer = served.client("crm", "writer")

        def create(i: int) -> int:
            return served.call(
                "POST", "/v1/subjects", writer, {"name": "Kundin", "email": f"kunde{i}@beispiel.de"}
            )[0]

        assert [create(i) for i in range(5)] == [201] * 5
        assert _wait_for(lambda: _unsealed(served.data_dir, postgres.url) == 0)

        # Appended right before the kill: left for the orphaned jobs process to seal.
        assert [create(i) for i in range(5, 10)] == [201] * 5
        served.proc.send_signal(signal.SIGKILL)
        served.proc.wait(timeout=10)
        assert _wait_for(lambda: not _alive(jobs)), "the jobs process outlived its server"
    assert _unsealed(tmp_path / "data", postgres.url) == 0


def test_on_sqlite_the_jobs_run_inside_the_server(tmp_path: Path):
    """The embedded default stays one process: no child, and events still get sealed."""
    with serve(tmp_path, TRESOR_SEAL_INTERVAL="0.05") as served:
        assert served.proc is not None
        assert _children(served.proc.pid) == []
        writer = served.client("crm", "writer")
        status, _ = served.call(
            "POST", "/v1/subjects", writer, {"name": "Kundin", "email": "kunde@beispiel.de"}
        )
        assert status == 201
        url = f"sqlite+aiosqlite:///{served.data_dir / 'tresor.sqlite3'}"
        assert _wait_for(lambda: _unsealed(served.data_dir, url) == 0)


@pytest.mark.parametrize("mode", ["inline", "off"])
def test_jobs_option_overrides_the_default(tmp_path: Path, postgres, mode: str):
    """`--jobs inline|off` starts no jobs process, even on PostgreSQL."""
    asyncio.run(postgres.truncate())
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(tmp_path / "data"),
        "TRESOR_POLICIES": str(POLICIES),
        "TRESOR_DATABASE_URL": postgres.url,
    }
    subprocess.run([TRESOR, "init"], env=env, check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(
        [TRESOR, "serve", "--port", str(port), "--jobs", mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: _healthy(port), timeout=30)
        assert _children(proc.pid) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_a_jobs_process_that_dies_is_started_again(tmp_path: Path, postgres):
    """Killing the jobs process while the server runs: `serve` starts a new one, which
    seals what was appended meanwhile."""
    with serve(tmp_path, **_on_postgres(postgres)) as served:
        assert served.proc is not None
        (first,) = _children(served.proc.pid)
        os.kill(first, signal.SIGKILL)
        assert _wait_for(lambda: _children(served.proc.pid) not in ([], [first]))
        writer = served.client("crm", "writer")
        status, _ = served.call(
            "POST", "/v1/subjects", writer, {"name": "Kundin", "email": "kundin@beispiel.de"}
        )
        assert status == 201
        assert _wait_for(lambda: _unsealed(served.data_dir, postgres.url) == 0)
