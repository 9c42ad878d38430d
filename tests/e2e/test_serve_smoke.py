"""The real `tresor` binary as a user runs it: init, create clients, serve, store, resolve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import POLICIES

TRESOR = str(Path(sys.executable).with_name("tresor"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(base: str, method: str, path: str, key: str | None = None, body: object = None):
    req = urllib.request.Request(base + path, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


@pytest.fixture
def served(tmp_path: Path):
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(tmp_path / "data"),
        "TRESOR_POLICIES": str(POLICIES),
    }
    env.pop("TRESOR_DATABASE_URL", None)

    def cli(*args: str) -> str:
        out = subprocess.run([TRESOR, *args], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    cli("init")
    port = _free_port()
    proc = subprocess.Popen(
        [TRESOR, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _call(base, "GET", "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("tresor serve did not come up: " + (proc.stdout.read() if proc.stdout else ""))
    try:
        yield base, cli, tmp_path / "data"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_a_user_stores_and_resolves_contact_data_with_the_served_binary(served):
    """Init, two CLI-created clients, and a contract basis make a lookup return the address."""
    base, cli, data_dir = served
    writer = cli("clients", "create", "crm", "--role", "writer").strip().splitlines()[-1]
    shop = cli(
        "clients", "create", "shop", "--role", "lookup", "--purpose", "order.delivery"
    ).strip().splitlines()[-1]
    assert writer.startswith("tresor_") and shop.startswith("tresor_")
    assert (data_dir / "keyring.json").stat().st_mode & 0o777 == 0o600

    status, headers, body = _call(
        base,
        "POST",
        "/v1/subjects",
        writer,
        {
            "email": "erika.mustermann@example.org",
            "name": "Erika Mustermann",
            "phone": "0221 4711000",
            "postal_address": {
                "street": "Domkloster 4", "postal_code": "50667", "city": "Köln", "country": "DE"
            },
        },
    )
    assert status == 201 and "x-request-id" in {k.lower() for k in headers}
    sid = body["subject_id"]
    status, _, body = _call(
        base, "POST", "/v1/lookup", shop, {"purpose": "order.delivery", "subject_id": sid}
    )
    assert status == 403 and body["reason"] == "no_consent"
    status, _, _ = _call(
        base, "POST", f"/v1/subjects/{sid}/consents", writer,
        {"purpose": "order.delivery", "reference": "Bestellung 100234"},
    )
    assert status == 201
    status, _, body = _call(
        base, "POST", "/v1/lookup", shop, {"purpose": "order.delivery", "phone": "+492214711000"}
    )
    assert status == 200
    assert body["fields"]["postal_address"]["city"] == "Köln"
    assert "email" not in body["fields"]
    status, _, body = _call(base, "GET", "/ready")
    assert status == 200 and body["checks"] == {"database": "ok", "keyring": "ok"}


def test_the_running_server_seals_the_audit_trail_within_a_second(served):
    """Events appended through the API are sealed by the server's own sealer, and verify passes."""
    base, cli, _ = served
    admin = cli("clients", "create", "ops", "--role", "admin").strip().splitlines()[-1]
    for _ in range(5):
        assert _call(base, "GET", "/v1/clients", admin)[0] == 200
        _call(base, "POST", "/v1/lookup", "tresor_wrong", {"purpose": "order.delivery"})
    status, _, _ = _call(base, "POST", "/v1/clients", admin, {"name": "shop", "role": "writer"})
    assert status == 201
    deadline = time.monotonic() + 5
    out = ""
    while time.monotonic() < deadline:
        out = cli("audit", "verify")
        if out.startswith("OK") and " 0 not sealed" in out:
            break
        time.sleep(0.2)
    assert out.startswith("OK: 2 events verified") and " 0 not sealed" in out, out
