"""A real `tresor serve` process in a temporary data dir, for end-to-end tests: start it
(`tresor init` first), talk to it over HTTP, create clients through the CLI, read the outbox,
stop it with SIGTERM (a clean shutdown)."""

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

from tests.conftest import POLICIES

TRESOR = str(Path(sys.executable).with_name("tresor"))
_CODE_RE = re.compile(r"(\d{6})\s*$")


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
    proc: subprocess.Popen[str] | None = None

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    def call_with_headers(
        self, method: str, path: str, key: str | None = None, body: object = None
    ) -> tuple[int, dict[str, str], Any]:
        """Like `call`, also returning the response headers (lower-cased names)."""
        req = urllib.request.Request(self.base + path, method=method)
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data, timeout=10) as resp:
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return resp.status, headers, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            headers = {k.lower(): v for k, v in err.headers.items()}
            return err.code, headers, json.loads(err.read() or b"null")

    def call(
        self, method: str, path: str, key: str | None = None, body: object = None
    ) -> tuple[int, Any]:
        """One JSON request; returns the status and the decoded body."""
        status, _, decoded = self.call_with_headers(method, path, key, body)
        return status, decoded

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
def serve(
    tmp_path: Path, port: int | None = None, workers: int = 1, **extra_env: str
) -> Iterator[Served]:
    """`tresor init` and `tresor serve` on `port` (else a free one) with SQLite in
    `tmp_path/data` (plus any TRESOR_* settings given as keyword arguments), with `workers`
    processes."""
    data_dir = tmp_path / "data"
    env = {**os.environ, "TRESOR_DATA_DIR": str(data_dir), "TRESOR_POLICIES": str(POLICIES)}
    env.pop("TRESOR_DATABASE_URL", None)
    env.update(extra_env)

    def cli(*args: str) -> str:
        out = subprocess.run([TRESOR, *args], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    cli("init", "--if-missing")  # a restart keeps the keyring
    port = port or free_port()
    log_path = tmp_path / "serve.log"
    log = log_path.open("a")
    proc = subprocess.Popen(
        [TRESOR, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(base=f"http://127.0.0.1:{port}", data_dir=data_dir, cli=cli, proc=proc)
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
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
