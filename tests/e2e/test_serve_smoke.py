"""The real `tresor` binary as a user runs it: init, create clients, serve, store, resolve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Served, serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as server:
        yield server


def test_a_user_stores_and_resolves_contact_data_with_the_served_binary(served):
    """Init, two CLI-created clients, and a contract basis make a lookup return the address."""
    writer = served.client("crm", "writer")
    shop = served.client("shop", "lookup", "order.delivery")
    assert writer.startswith("tresor_") and shop.startswith("tresor_")
    assert (served.data_dir / "keyring.json").stat().st_mode & 0o777 == 0o600

    status, headers, body = served.call_with_headers(
        "POST",
        "/v1/subjects",
        writer,
        {
            "email": "erika.mustermann@example.org",
            "name": "Erika Mustermann",
            "phone": "0221 4711000",
            "postal_address": {
                "street": "Domkloster 4",
                "postal_code": "50667",
                "city": "Köln",
                "country": "DE",
            },
        },
    )
    assert status == 201 and "x-request-id" in {k.lower() for k in headers}
    sid = body["subject_id"]
    status, body = served.call(
        "POST", "/v1/lookup", shop, {"purpose": "order.delivery", "subject_id": sid}
    )
    assert status == 403 and body["reason"] == "no_consent"
    status, _ = served.call(
        "POST",
        f"/v1/subjects/{sid}/consents",
        writer,
        {"purpose": "order.delivery", "reference": "Bestellung 100234"},
    )
    assert status == 201
    status, body = served.call(
        "POST", "/v1/lookup", shop, {"purpose": "order.delivery", "phone": "+492214711000"}
    )
    assert status == 200
    assert body["fields"]["postal_address"]["city"] == "Köln"
    assert "email" not in body["fields"]
    status, body = served.call("GET", "/ready")
    assert status == 200 and body["checks"] == {"database": "ok", "keyring": "ok"}


def test_the_running_server_seals_the_audit_trail_within_a_second(served):
    """Events appended through the API are sealed by the server's own sealer, and verify passes."""
    admin = served.client("ops", "admin")
    for _ in range(5):
        assert served.call("GET", "/v1/clients", admin)[0] == 200
        served.call("POST", "/v1/lookup", "tresor_wrong", {"purpose": "order.delivery"})
    status, _ = served.call("POST", "/v1/clients", admin, {"name": "shop", "role": "writer"})
    assert status == 201
    deadline = time.monotonic() + 5
    out = ""
    while time.monotonic() < deadline:
        out = served.cli("audit", "verify")
        if out.startswith("OK") and " 0 not sealed" in out:
            break
        time.sleep(0.2)
    assert out.startswith("OK: 2 events verified") and " 0 not sealed" in out, out
