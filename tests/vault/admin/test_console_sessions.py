"""Console sessions on both databases: who may open one, what a session id reads back, the
sign-out recorded once, and the sign-in limits counted per account and address."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.factories import ADMIN, client_key
from vault.admin import console_sessions
from vault.admin.clients import create_client
from vault.errors import RateLimited
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import web_sessions


async def _actions(vault) -> list[tuple[str, str, str | None]]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(select(audit_events).order_by(audit_events.c.seq))
        return [(r.action, r.decision, r.reason) for r in rows if r.action.startswith("dpo:")]


async def test_only_a_dpo_client_or_a_vouched_sso_user_opens_a_session(vault):
    """A writer client, neither or both identities are programming errors, not sessions."""
    writer, _ = await create_client(vault, ADMIN, "crm", "writer", [])
    dpo, _ = await create_client(vault, ADMIN, "datenschutz", "dpo", [])
    for kwargs in ({"client": writer}, {}, {"client": dpo, "sso_subject": "u1"}):
        with pytest.raises(ValueError):
            await console_sessions.open_session(vault, "192.0.2.1", None, **kwargs)
    async with vault.engine.connect() as conn:
        assert (await conn.execute(select(web_sessions))).all() == []


async def test_a_session_reads_back_until_signed_out_once(vault):
    """The id opens the session, a changed id opens nothing, sign-out ends it and is audited
    once however often it is repeated."""
    dpo, _ = await create_client(vault, ADMIN, "datenschutz", "dpo", [])
    token, opened = await console_sessions.open_session(vault, "192.0.2.1", "r1", client=dpo)
    read = await console_sessions.read_session(vault, token)
    assert read is not None and (read.account, read.client_id) == ("datenschutz", dpo.id)
    assert read.expires_at == opened.expires_at
    assert await console_sessions.read_session(vault, token[:-1] + "x") is None
    assert await console_sessions.read_session(vault, "y" * 500) is None
    assert await console_sessions.end_session(vault, token, "r2") is True
    assert await console_sessions.end_session(vault, token, "r3") is False
    assert await console_sessions.read_session(vault, token) is None
    assert await _actions(vault) == [
        ("dpo:session:start", "allow", None),
        ("dpo:session:end", "allow", None),
    ]


async def test_sign_in_limits_count_per_account_and_per_address(vault, clock):
    """Past the account's limit that account is refused from any address, past the address's
    limit any account from it; each refusal is audited; the window moves on."""
    await client_key(vault, "datenschutz", "dpo")
    vault.settings = replace(
        vault.settings, console_signin_per_account=2, console_signin_per_address=3
    )
    for address in ("192.0.2.1", "192.0.2.2"):
        await console_sessions.refuse_signin(vault, address, None, account="sso:u1")
    with pytest.raises(RateLimited) as limited:
        await console_sessions.check_signin_allowed(
            vault, "192.0.2.9", None, account="sso:u1", name="sso:u1"
        )
    assert 1 <= limited.value.retry_after <= 15 * 60 + 1
    await console_sessions.check_signin_allowed(vault, "192.0.2.9", None, account="sso:u2")
    for _ in range(2):  # with u1's attempt above, three from this address
        await console_sessions.refuse_signin(vault, "192.0.2.1", None)
    with pytest.raises(RateLimited):
        await console_sessions.check_signin_allowed(vault, "192.0.2.1", None)
    clock.advance(timedelta(minutes=16))
    await console_sessions.check_signin_allowed(vault, "192.0.2.1", None, account="sso:u1")
    reasons = [reason for action, decision, reason in await _actions(vault) if decision == "deny"]
    assert reasons.count("rate_limited") == 2
