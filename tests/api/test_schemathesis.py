"""Schemathesis against the committed OpenAPI document, over the ASGI app, on both databases.

The app is built from settings (not from the test's VaultContext): schemathesis drives ASGI
apps from its own event-loop thread and runs the app's lifespan there, so the vault (and its
database pool) is opened on that loop by the app's start-up hook, exactly as in `tresor serve`.
Each backend gets one data dir, keyring, set of API clients (one per role) and app, shared by
all operations; each request carries the key of the role its operation needs.

The schema is loaded eagerly (`schema.parametrize()`, one pytest item per operation and
backend) rather than through `schemathesis.pytest.from_fixture`, whose lazy parametrization
sets `Node._nodeid`, an attribute pytest 9 no longer has.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from litestar import Litestar
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update

from api.app import create_app
from tests.support.factories import client_key
from vault.admin.clients import KEY_PREFIX, key_hash
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.tables import clients

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "openapi" / "openapi.json"
POLICIES = ROOT / "policies"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]
#: Which client role each protected path prefix needs (the first match wins).
ROLE_BY_PATH = (
    ("/v1/lookup", "lookup"),
    ("/v1/contacts", "writer"),
    ("/v1/followups", "writer"),
    ("/v1/reports", "dpo"),
    ("/v1/clients", "admin"),
    ("/v1/requests", "dpo"),
    ("/v1/identity-changes", "dpo"),
    ("/v1/audit", "dpo"),
    ("/v1/ropa", "dpo"),
    ("/v1/consents/", "dpo"),
    ("/v1/subjects/{subject_id}/export", "dpo"),
    ("/v1/subjects", "writer"),
)
#: Public operations: no credentials are sent.
PUBLIC = {"/health", "/ready", "/v1/consents/confirm", "/metrics"}
#: Areas whose credentials are not API keys (the privacy centre's short-lived subject
#: sessions): exercised without credentials, so every answer must be a documented one.
NO_API_KEY = ("/self/",)


#: The API key of each role. Schemathesis builds part of its cases (the coverage phase) while
#: collecting tests, before any database exists, so the keys are fixed up front and each
#: backend's clients are then given exactly these keys.
KEYS: dict[str, str] = {
    role: KEY_PREFIX + secrets.token_urlsafe(32) for role in ("writer", "lookup", "admin", "dpo")
}


async def _make_clients(settings: Settings) -> None:
    ctx = VaultContext.open(settings)
    try:
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


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Settings:
    """One migrated database, data dir and keyring per backend, shared by all operations
    (starting an app per operation would cost more than the requests themselves)."""
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
    return settings


@pytest.fixture(scope="module")
def keys(backend: Settings) -> dict[str, str]:
    asyncio.run(_make_clients(backend))
    return KEYS


@pytest.fixture(scope="module")
def asgi_app(backend: Settings, keys: dict[str, str]) -> Iterator[Litestar]:
    from schemathesis.python.asgi import shutdown_lifespans

    yield create_app(backend, configure_logs=False)
    shutdown_lifespans()  # runs the app's shutdown hook, which closes the vault it opened


schema = schemathesis.openapi.from_path(OPENAPI)


def _role_for(path: str) -> str | None:
    if path in PUBLIC or path.startswith(NO_API_KEY):
        return None
    for prefix, role in ROLE_BY_PATH:
        if path.startswith(prefix):
            return role
    raise AssertionError(f"no role mapped for {path}; extend ROLE_BY_PATH")


@schema.auth(refresh_interval=None, retry_on=[])
class RoleKeyAuth:
    """Schemathesis auth provider: the API key of the role the operation needs. Going through
    schemathesis (rather than adding the header to each call) lets it leave the key out of
    the cases where it tests a missing Authorization header on purpose."""

    def get(self, case, ctx):
        role = _role_for(case.path)
        return None if role is None else KEYS[role]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_openapi_document(case, asgi_app, keys):
    """Every operation, fed schema-derived valid and invalid input with the right role's key,
    answers without a server error, with a documented status, content type and body shape."""
    # Operations are collected before the app exists; bind this backend's app, so that the
    # checks' own probe requests (e.g. ignored_auth's) reach it in-process too.
    case.operation.app = case.operation.schema.app = asgi_app
    case.call_and_validate(checks=CHECKS)
