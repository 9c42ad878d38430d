"""Keyring faults: while the keyring file cannot be read, a running server opens no further
subject key: lookups and writes answer 503 problem+json, reveal nothing and store nothing,
/ready says which check failed; when the file is readable again the server recovers by
itself. (The DEK cache is off here, so every lookup needs the keyring.)"""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import func, select

from tests.support.factories import person
from tests.support.server import serve
from vault.storage.audit_tables import audit_events
from vault.storage.db import make_engine
from vault.storage.tables import subjects

pytestmark = [pytest.mark.postgres]


async def _facts(url: str) -> tuple[int, int]:
    """(subjects, allowed lookup events)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            n_subjects = (
                await conn.execute(select(func.count()).select_from(subjects))
            ).scalar_one()
            allowed = (
                await conn.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.action == "client:contact:lookup")
                    .where(audit_events.c.decision == "allow")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return n_subjects, allowed


def test_unreadable_keyring_gives_503_reveals_nothing_and_recovers(postgres, tmp_path):
    """With keyring.json gone, lookups and subject creation get 503 and /ready names the
    keyring; once the file is back, the same process serves again without a restart."""
    asyncio.run(postgres.truncate())
    with serve(
        tmp_path,
        TRESOR_DATABASE_URL=postgres.url,
        TRESOR_DEK_CACHE="0",
        TRESOR_RETENTION_INTERVAL="0",
        TRESOR_LOG_LEVEL="WARNING",
    ) as served:
        writer = served.client("crm", "writer")
        shop = served.client("shop", "lookup", "order.delivery")
        p = person(71)
        status, body = served.call("POST", "/v1/subjects", writer, p)
        assert status == 201, body
        sid = body["subject_id"]
        status, body = served.call(
            "POST",
            f"/v1/subjects/{sid}/consents",
            writer,
            {"purpose": "order.delivery", "reference": "Bestellung 71"},
        )
        assert status == 201, body
        query = {"purpose": "order.delivery", "subject_id": sid}
        status, body = served.call("POST", "/v1/lookup", shop, query)
        assert status == 200 and body["fields"]["name"] == p["name"], body
        assert served.call("GET", "/ready")[0] == 200

        keyring = served.data_dir / "keyring.json"
        away = served.data_dir / "keyring.json.away"
        os.replace(keyring, away)  # as an unmounted secret volume would look
        try:
            before = asyncio.run(_facts(postgres.url))
            secrets = [p["name"].lower(), p["postal_address"]["street"].lower(), p["email"].lower()]
            for _ in range(3):
                status, headers, body = served.call_with_headers("POST", "/v1/lookup", shop, query)
                assert status == 503, body
                assert headers["content-type"].startswith("application/problem+json")
                assert body["type"] == "urn:tresor:problem:unavailable" and "fields" not in body
                assert headers.get("retry-after")
                assert not any(s in str(body).lower() for s in secrets), body
            status, body = served.call("POST", "/v1/subjects", writer, person(72))
            assert status == 503, body
            status, body = served.call("GET", "/ready")
            assert status == 503 and body["checks"]["keyring"] == "unavailable", body
            assert asyncio.run(_facts(postgres.url)) == before  # no data, no allowed read
        finally:
            os.replace(away, keyring)

        status, body = served.call("POST", "/v1/lookup", shop, query)
        assert status == 200 and body["fields"]["name"] == p["name"], body
        assert served.call("GET", "/ready")[0] == 200
        status, body = served.call("POST", "/v1/subjects", writer, person(72))
        assert status == 201, body
