"""Schemathesis against the committed OpenAPI document, over the ASGI app, on both databases.

One pytest item per operation and backend (the app and its set-up: `schemathesis_app`). The
schema is loaded eagerly (`schema.parametrize()`) rather than through
`schemathesis.pytest.from_fixture`, whose lazy parametrization sets `Node._nodeid`, an
attribute pytest 9 no longer has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from litestar import Litestar

from api.app import create_app
from tests.api.schemathesis_app import (
    BACKENDS,
    backend_settings,
    load_schema,
)
from vault.settings import Settings


@pytest.fixture(scope="module", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Settings:
    """One migrated database, data dir and keyring per backend, shared by all operations
    (starting an app per operation would cost more than the requests themselves)."""
    return backend_settings(request, tmp_path_factory, sqlite_template)


@pytest.fixture(scope="module")
def asgi_app(backend: Settings) -> Iterator[Litestar]:
    from schemathesis.python.asgi import shutdown_lifespans

    yield create_app(backend, configure_logs=False)
    shutdown_lifespans()  # runs the app's shutdown hook, which closes the vault it opened


schema = load_schema()

#: Examples per operation: the suite's 30, or the issue's bar (`make schemathesis-100`).
EXAMPLES = int(os.environ.get("TRESOR_ST_EXAMPLES", "30"))


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_openapi_document(case, asgi_app):
    """Every operation, fed schema-derived valid and invalid input with the right role's
    credentials, passes all of schemathesis's default checks: no server error, documented
    statuses, headers and bodies, valid input accepted, invalid input refused, OPTIONS
    answering the documented methods, authentication not ignored."""
    # Operations are collected before the app exists; bind this backend's app, so that the
    # checks' own probe requests (e.g. ignored_auth's) reach it in-process too.
    case.operation.app = case.operation.schema.app = asgi_app
    case.call_and_validate()
