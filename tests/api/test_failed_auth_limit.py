"""Failed authentication is rate-limited per client address with a clear 429."""

from __future__ import annotations

from dataclasses import replace

from tests.support.factories import api, bearer, client_key


async def test_repeated_bad_keys_get_429_then_even_a_good_key_waits(vault):
    """After the limit of failures from one address, requests get 429 with Retry-After."""
    good = await client_key(vault, "crm", "writer")
    vault.settings = replace(vault.settings, failed_auth_limit=5)
    async with api(vault) as http:
        codes = [
            (await http.get("/v1/clients", headers=bearer("tresor_wrong"))).status_code
            for _ in range(5)
        ]
        assert codes == [401] * 5
        r = await http.post("/v1/subjects", json={"name": "Erika Muster"}, headers=bearer(good))
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) >= 1


async def test_successful_requests_do_not_count_against_the_limit(vault):
    """Only failures count: many good requests never trip the limiter."""
    good = await client_key(vault, "crm", "writer")
    vault.settings = replace(vault.settings, failed_auth_limit=3)
    async with api(vault) as http:
        for _ in range(6):
            r = await http.post("/v1/subjects", json={"name": "Erika Muster"}, headers=bearer(good))
            assert r.status_code == 201
