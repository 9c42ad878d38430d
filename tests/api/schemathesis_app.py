"""What the schemathesis tests share: the served app per backend, the role of each operation,
the API keys and the self-service session they authenticate with.

The app is built from settings (not from a test's VaultContext): schemathesis drives ASGI apps
from its own event-loop thread and runs the app's lifespan there, so the vault (and its
database pool) is opened on that loop by the app's start-up hook, exactly as in `tresor serve`.
Each test module gets one data dir, keyring, set of API clients (one per role) and app per
backend, shared by all its cases; each request carries the key of the role its operation needs.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy import update

from tests.api import schemathesis_hooks  # noqa: F401  (registers the document's formats)
from tests.support.factories import client_key
from tests.support.self_service import sign_in
from vault.admin.clients import KEY_PREFIX, key_hash
from vault.audit.events import Actor
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.tables import clients
from vault.subjects.store import create_subject

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "openapi" / "openapi.json"
POLICIES = ROOT / "policies"
CONFIG = ROOT / "schemathesis.toml"
BACKENDS = ["sqlite", "postgresql"]
#: Which client role each protected path prefix needs (the first match wins).
ROLE_BY_PATH = (
    ("/v1/lookup", "lookup"),
    ("/v1/contacts", "writer"),
    ("/v1/followups", "writer"),
    ("/v1/reports", "dpo"),
    ("/v1/campaigns", "admin"),
    ("/v1/clients", "admin"),
    ("/v1/recipients", "admin"),
    ("/v1/notifications/{notification_id}/close", "dpo"),
    ("/v1/notifications", "lookup"),
    ("/v1/requests", "dpo"),
    ("/v1/mail", "dpo"),
    ("/v1/identity-changes", "dpo"),
    ("/v1/audit", "dpo"),
    ("/v1/ropa", "dpo"),
    ("/v1/consents/", "dpo"),
    ("/v1/subjects/{subject_id}/export", "dpo"),
    ("/v1/subjects/{subject_id}/restriction", "dpo"),
    ("/v1/subjects", "writer"),
)
#: Public operations: no credentials are sent.
PUBLIC = {
    "/health",
    "/ready",
    "/v1/consents/confirm",
    "/metrics",
    "/self/v1/session",
    "/self/v1/session/verify",
    "/self/v1/identity-changes/confirm",
    "/self/v1/identity-changes/object",
}
#: The privacy centre's API: a data subject's session token (signed in through the real
#: code flow when the backend is set up), not an API key.
SELF = "/self/"
#: The customer the self-service session belongs to.
SELF_EMAIL = "st.self.q7x2k@example.org"
SESSION: dict[str, str] = {}
#: The API key of each role. Schemathesis builds part of its cases (the coverage phase) while
#: collecting tests, before any database exists, so the keys are fixed up front and each
#: backend's clients are then given exactly these keys.
KEYS: dict[str, str] = {
    role: KEY_PREFIX + secrets.token_urlsafe(32) for role in ("writer", "lookup", "admin", "dpo")
}


async def _make_clients(settings: Settings) -> None:
    ctx = VaultContext.open(settings)
    try:
        await create_subject(ctx, Actor("client", "st-setup"), {"email": SELF_EMAIL})
        SESSION["token"] = (await sign_in(ctx, SELF_EMAIL)).token
        purposes = sorted(ctx.catalogue.purposes)
        for role, key in KEYS.items():
            # Unlikely names, so generated revocations cannot hit the test's own clients.
            name = f"st-{role}-q7x2k"
            await client_key(ctx, name, role, purposes if role == "lookup" else [])
            async with ctx.transaction() as conn:
                await conn.execute(
                    update(clients)
                    .where(clients.c.name == name)
                    .values(key_hash=key_hash(ctx, key))
                )
    finally:
        await ctx.close()


def backend_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Settings:
    """A migrated, empty database (`request.param` names the backend), data dir and keyring,
    with the role clients and the self-service session made in it."""
    data = tmp_path_factory.mktemp(f"schemathesis-{request.param}") / "data"
    data.mkdir()
    if request.param == "sqlite":
        shutil.copy(sqlite_template, data / "tresor.sqlite3")
        url = f"sqlite+aiosqlite:///{data / 'tresor.sqlite3'}"
    else:
        pg = request.getfixturevalue("postgres")
        asyncio.run(pg.truncate())
        url = pg.url
    settings = Settings(
        data_dir=data,
        database_url=url,
        policies_dir=POLICIES,
        public_url="http://testserver.local",
        client_cache_seconds=0.0,
        # ignored_auth probes every operation with invalid credentials and expects 401/403;
        # past TRESOR_FAILED_AUTH_LIMIT such probes from one address get 429 by design (run
        # without this: only "Expected 401 or 403, got 429" on those probes; requests with a
        # valid key are never braked). The brake has its own tests
        # (tests/api/test_failed_auth_limit.py).
        failed_auth_limit=1_000_000,
    )
    LocalKeyring.create(settings.keyring_path)
    asyncio.run(_make_clients(settings))
    return settings


def role_for(path: str) -> str | None:
    """The role whose key an operation on `path` is called with (None: public)."""
    if path in PUBLIC:
        return None
    if path.startswith(SELF):
        return "self"
    for prefix, role in ROLE_BY_PATH:
        if path.startswith(prefix):
            return role
    raise AssertionError(f"no role mapped for {path}; extend ROLE_BY_PATH")


class RoleKeyAuth:
    """Schemathesis auth provider: the API key of the role the operation needs. Going through
    schemathesis (rather than adding the header to each call) lets it leave the key out of
    the cases where it tests a missing Authorization header on purpose."""

    def get(self, case: Any, ctx: Any) -> str | None:
        role = role_for(case.path)
        if role == "self":
            # Cases of the coverage phase are built while collecting, before the session
            # exists; those get a token no session has (a documented 401).
            return SESSION.get("token", "not-yet-signed-in")
        return None if role is None else KEYS[role]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def load_schema() -> OpenApiSchema:
    """The committed document, with the repository's schemathesis configuration (what `st
    run` reads), each operation authenticated as its role."""
    config = SchemathesisConfig.from_path(CONFIG)
    schema = schemathesis.openapi.from_path(OPENAPI, config=config)
    schema.auth(refresh_interval=None, retry_on=[])(RoleKeyAuth)
    return schema
