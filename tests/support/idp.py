"""A real OpenID provider for the single sign-on end-to-end test: the npm package
`oidc-provider` run by Node.js from tests/support/oidc/ (package.json and package-lock.json
are committed, node_modules is not: `npm ci` installs it on first use).

Without Node.js or npm the test is skipped with a message saying what to install; under
CI=true it fails instead, like the browser tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import IN_CI

FOLDER = Path(__file__).resolve().parent / "oidc"


def _missing(message: str) -> None:
    text = "OpenID provider end-to-end test not run. " + message
    if IN_CI:
        pytest.fail("CI=true requires it. " + text, pytrace=False)
    pytest.skip(text)


def require_provider() -> str:
    """Node.js with `oidc-provider` installed in tests/support/oidc (installed here from the
    committed lock file when missing); returns the path of `node`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("Node.js 20 and npm are needed: run `apt-get install nodejs npm`")
    assert node is not None and npm is not None
    if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        out = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=FOLDER,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            _missing(f"`npm ci` in {FOLDER} failed: {out.stderr[-500:]}")
    return node


@contextmanager
def oidc_provider(
    port: int, client_id: str, client_secret: str, redirect_uri: str, log: Path
) -> Iterator[str]:
    """The provider listening on 127.0.0.1:`port` with one registered client; yields its
    issuer URL and stops it afterwards."""
    node = require_provider()
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": client_secret,
        "REDIRECT_URI": redirect_uri,
        "NODE_ENV": "development",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [node, "provider.mjs"], cwd=FOLDER, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while "ready " not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the OpenID provider did not start: " + log.read_text())
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
