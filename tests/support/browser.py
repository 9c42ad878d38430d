"""Browser end-to-end support: Debian's Chromium driven by Playwright, and a real
`tresor serve` process in a temporary data dir.

Playwright never downloads a browser here: it drives the system Chromium at
/usr/bin/chromium. Without it (or without the Playwright package) the browser tests are
skipped with a message saying how to enable them; under CI=true they fail instead.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, POLICIES

CHROMIUM = Path(os.environ.get("TRESOR_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TRESOR = str(Path(sys.executable).with_name("tresor"))
_CODE_RE = re.compile(r"(\d{6})\s*$")


def require_browser() -> None:
    """Skip (or, under CI=true, fail) unless Chromium and Playwright are both installed."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(
            f"Chromium is not installed at {CHROMIUM}: run `apt-get install chromium` "
            "(or point TRESOR_TEST_CHROMIUM at a Chromium binary)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python is missing: run `.venv/bin/pip install -e '.[test]'`")
    if missing:
        message = "browser end-to-end test not run. " + "; ".join(missing)
        if IN_CI:
            pytest.fail("CI=true requires the browser test. " + message, pytrace=False)
        pytest.skip(message)


@contextmanager
def chromium_page(timeout_ms: int = 10_000) -> Iterator[Any]:
    """A fresh page in headless system Chromium that accepts downloads."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True, locale="de-DE")
            context.set_default_timeout(timeout_ms)
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running `tresor serve` and ways to talk to it."""

    base: str
    data_dir: Path
    cli: Callable[..., str]

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    def call(
        self, method: str, path: str, key: str | None = None, body: object = None
    ) -> tuple[int, Any]:
        """One JSON request; returns the status and the decoded body."""
        req = urllib.request.Request(self.base + path, method=method)
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def client(self, name: str, role: str, *purposes: str) -> str:
        """A new API client's key (the last line `tresor clients create` prints)."""
        args = ["clients", "create", name, "--role", role]
        for purpose in purposes:
            args += ["--purpose", purpose]
        return self.cli(*args).strip().splitlines()[-1]

    def mail_files(self) -> set[Path]:
        return set(self.outbox.glob("*.eml")) if self.outbox.exists() else set()

    def wait_for_code(self, seen: set[Path], timeout: float = 10.0) -> str:
        """The code in the first sign-in mail that was not in `seen`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in sorted(self.mail_files() - seen, key=lambda p: p.stat().st_mtime_ns):
                msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                match = _CODE_RE.search(str(msg["Subject"]))
                if match:
                    return match.group(1)
            time.sleep(0.05)
        raise AssertionError("no sign-in code arrived in the outbox")


@contextmanager
def serve(tmp_path: Path) -> Iterator[Served]:
    """`tresor init` and `tresor serve` on a free port with SQLite in `tmp_path/data`."""
    data_dir = tmp_path / "data"
    env = {**os.environ, "TRESOR_DATA_DIR": str(data_dir), "TRESOR_POLICIES": str(POLICIES)}
    env.pop("TRESOR_DATABASE_URL", None)

    def cli(*args: str) -> str:
        out = subprocess.run([TRESOR, *args], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    cli("init")
    port = free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [TRESOR, "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(base=f"http://127.0.0.1:{port}", data_dir=data_dir, cli=cli)
    deadline = time.monotonic() + 30
    while True:
        try:
            if served.call("GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            proc.wait()
            log.close()
            pytest.fail("tresor serve did not come up: " + log_path.read_text())
        time.sleep(0.1)
    try:
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
