"""Liveness and readiness endpoints for load balancers."""

from __future__ import annotations

from tests.support.factories import api


async def test_health_needs_no_key(vault):
    """/health answers 200 ok without credentials (and ignores a bogus key)."""
    async with api(vault) as http:
        r = await http.get("/health")
        assert r.status_code == 200
        assert r.json()["status"] == "ok"
        r = await http.get("/health", headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 200
        assert r.headers["x-request-id"]


async def test_ready_when_database_and_keyring_are_fine(vault):
    """/ready answers 200 with both checks ok, without credentials."""
    async with api(vault) as http:
        r = await http.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "keyring": "ok"}}


async def test_ready_fails_while_the_keyring_is_gone_and_recovers(vault):
    """/ready answers 503 naming the keyring while the keyring file is missing, and 200 again
    once it is back."""
    keyring = vault.settings.keyring_path
    aside = keyring.with_name("keyring.json.aside")
    async with api(vault) as http:
        assert (await http.get("/ready")).status_code == 200
        keyring.rename(aside)
        try:
            r = await http.get("/ready")
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/json")
            assert r.json() == {
                "status": "unavailable",
                "checks": {"database": "ok", "keyring": "unavailable"},
            }
            assert str(keyring) not in r.text  # no file system details in the answer
        finally:
            aside.rename(keyring)
        r = await http.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"database": "ok", "keyring": "ok"}


async def test_ready_fails_on_a_corrupt_keyring_and_recovers(vault):
    """A keyring file replaced by garbage makes /ready 503; restoring it makes it 200."""
    keyring = vault.settings.keyring_path
    original = keyring.read_bytes()
    async with api(vault) as http:
        try:
            keyring.write_text("{not json", encoding="utf-8")
            r = await http.get("/ready")
            assert r.status_code == 503, r.text
            assert r.json()["checks"]["keyring"] == "unavailable"
        finally:
            keyring.write_bytes(original)
        r = await http.get("/ready")
        assert r.status_code == 200, r.text
