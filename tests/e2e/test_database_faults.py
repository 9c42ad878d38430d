"""Database faults: with PostgreSQL cut off mid-operation the API answers 503 problem+json,
reveals nothing and acknowledges nothing; it recovers by itself when the database returns."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import POLICIES
from tests.support.factories import api, bearer, client_key, person
from tests.support.faults import CuttableProxy
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.tables import subjects


async def test_cut_database_gives_503_reveals_nothing_and_recovers(postgres, tmp_path, clock):
    """Lookups and writes fail closed with 503 while the database is away, then work again."""
    await postgres.truncate()
    url = make_url(postgres.url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        ),
        policies_dir=POLICIES,
        client_cache_seconds=0.0,
    )
    settings.data_dir.mkdir()
    LocalKeyring.create(settings.keyring_path)
    vault = VaultContext.open(settings, clock=FrozenClock(clock.now()))
    try:
        writer = await client_key(vault, "crm", "writer")
        shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
        p = person(77)
        async with api(vault) as http:
            created = await http.post("/v1/subjects", json=p, headers=bearer(writer))
            sid = created.json()["subject_id"]
            r = await http.post(
                f"/v1/subjects/{sid}/consents",
                json={"purpose": "order.delivery", "reference": "Auftrag 1"},
                headers=bearer(writer),
            )
            assert r.status_code == 201
            query = {"purpose": "order.delivery", "subject_id": sid}
            assert (
                await http.post("/v1/lookup", json=query, headers=bearer(shop))
            ).status_code == 200

            proxy.cut()
            r = await http.post("/v1/lookup", json=query, headers=bearer(shop))
            assert r.status_code == 503
            assert r.headers["content-type"].startswith("application/problem+json")
            assert p["name"] not in r.text and p["phone"] not in r.text
            r = await http.post("/v1/subjects", json=person(78), headers=bearer(writer))
            assert r.status_code == 503
            assert (await http.get("/ready")).status_code == 503

            proxy.restore()
            for _ in range(20):
                r = await http.post("/v1/lookup", json=query, headers=bearer(shop))
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200 and r.json()["fields"]["name"] == p["name"]
            assert (await http.get("/ready")).status_code == 200
        async with vault.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(subjects))).scalar_one()
        assert count == 1  # the write answered 503 was not stored
    finally:
        await vault.close()
        await proxy.stop()
