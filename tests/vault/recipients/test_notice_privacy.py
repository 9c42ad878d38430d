"""No contact value and no signing secret leaves through the notice path: not in the
outbox, the deliveries, the payloads and headers a receiver gets, the audit trail, the
logs or an error; the secret is stored only wrapped (both databases)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

from sqlalchemy import select

from tests.support.dsar import DPO, contract, erase
from tests.support.factories import ADMIN, WRITER
from tests.support.privacy import CANARY, audit_rows, found_canaries
from tests.support.receiver import Faults, serving
from tests.support.recipients import client_recipient, lookup_by, receiver
from vault.recipients import registry
from vault.recipients.delivery import Deliverer
from vault.recipients.signing import encode_secret
from vault.storage.recipient_tables import deliveries, domain_events, recipient_secrets
from vault.subjects.store import create_subject, rectify_contact

NEW_EMAIL = "canary.zx81q@example.org"


async def _rows(vault, table) -> str:
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(select(table))).all()
    return json.dumps([dict(r._mapping) for r in rows], default=lambda v: repr(v))


async def test_no_value_or_secret_in_notices_trail_or_logs(vault, clock, log_stream, caplog):
    """A canary subject is looked up, rectified (to a canary address) and erased while the
    receiver first fails; then every place a notice touches is searched for the canaries
    and for the signing secret in its spellings."""
    caplog.set_level(logging.DEBUG)
    data = {k: v for k, v in CANARY.items() if k != "email"} | {"email": "start@example.org"}
    state, app = receiver(vault, [])
    faults = Faults(fail_rate=1.0)
    captured: list[tuple[dict[str, str], bytes]] = []

    async def capture(scope, receive, send):
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        captured.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await faults.wrap(app)(scope, replay, send)

    async with serving(capture) as base:
        actor, key = await client_recipient(vault, "mailer", base + "/tresor/notices?t=1")
        secret = encode_secret(key)
        rotated = await registry.rotate_secret(vault, ADMIN, "mailer")
        state.keys.append(key)
        sid = await create_subject(vault, WRITER, data)
        await contract(vault, sid)
        await lookup_by(vault, actor, sid)
        await rectify_contact(vault, WRITER, sid, {"email": NEW_EMAIL})
        await erase(vault, DPO, sid)
        deliverer = Deliverer(vault)
        try:
            await deliverer.run()
            faults.fail_rate = 0.0
            clock.advance(timedelta(minutes=5))
            await deliverer.run()
        finally:
            await deliverer.close()
    assert [n["type"] for n in state.handled] == [
        "subject.rectified",
        "basis.ended",
        "subject.erased",
    ]
    assert state.handled[0]["data"]["fields"] == ["email"]
    secrets_ = [secret, secret[6:], key.hex(), rotated, rotated[6:]]
    secrets_ += [base64.urlsafe_b64encode(key).decode()]

    def clean(text: str, where: str) -> None:
        assert not found_canaries(text), (where, found_canaries(text))
        assert "start@example.org" not in text, where
        assert not [s for s in secrets_ if s in text], where

    for headers, body in captured:
        clean(json.dumps(headers) + body.decode(), "a request the receiver got")
    clean(await _rows(vault, domain_events), "domain_events")
    clean(await _rows(vault, deliveries), "deliveries")
    clean(json.dumps(await audit_rows(vault), default=str), "audit trail")
    clean(log_stream.getvalue(), "structlog")
    clean("\n".join(r.getMessage() for r in caplog.records), "stdlib logging")
    stored = await _rows(vault, recipient_secrets)
    clean(stored, "recipient_secrets (wrapped only)")
