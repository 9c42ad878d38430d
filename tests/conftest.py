"""Shared fixtures: every storage test runs once on SQLite and once on PostgreSQL.

PostgreSQL is taken from TRESOR_TEST_PG_URL (default: the local server on 127.0.0.1:5432,
database `test`). Each test session creates its own database there, migrates it once and
truncates the tables between tests. Without a reachable server the PostgreSQL half is
skipped with a message saying how to enable it; under CI=true it fails instead.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.rights.selfservice.mail import wait_for_mail
from vault.settings import Settings
from vault.storage.db import make_engine, upgrade
from vault.storage.tables import metadata

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
PG_URL = os.environ.get("TRESOR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_HINT = (
    "PostgreSQL not reachable at {url}: the PostgreSQL half of the storage tests is skipped. "
    "Start a server (trust auth) or set TRESOR_TEST_PG_URL=postgresql+asyncpg://user@host/db "
    "to run it."
)
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
#: The SoftHSM2 token fixtures (`token`, `hsm`) of the PKCS#11 tests.
pytest_plugins = ["tests.support.softhsm"]


async def _pg_probe(url: str) -> str | None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return type(exc).__name__
    finally:
        await engine.dispose()


class _Postgres:
    """One database per test session on the PostgreSQL server, migrated once."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.url: str | None = None
        self._admin_url = PG_URL

    def start(self) -> None:
        self.error = asyncio.run(_pg_probe(self._admin_url))
        if self.error:
            return
        name = f"tresor_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        self.url = (
            make_url(self._admin_url).set(database=name).render_as_string(hide_password=False)
        )
        upgrade(self.url)

    def stop(self) -> None:
        if self.url:
            name = make_url(self.url).database
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _admin(self, sql: str) -> None:
        engine = make_engine(self._admin_url)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    async def truncate(self) -> None:
        assert self.url
        engine = make_engine(self.url)
        try:
            async with engine.begin() as conn:
                names = ", ".join(t.name for t in metadata.sorted_tables)
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        finally:
            await engine.dispose()


_PG = _Postgres()


@pytest.fixture(scope="session")
def postgres() -> Iterator[_Postgres]:
    _PG.start()
    if _PG.error:
        message = PG_HINT.format(url=PG_URL) + f" ({_PG.error})"
        if IN_CI:
            pytest.fail("CI=true requires PostgreSQL. " + message, pytrace=False)
        pytest.skip(message)
    yield _PG
    _PG.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating per test is slower)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database; parametrised over both backends."""
    if request.param == "sqlite":
        target = tmp_path / "data" / "tresor.sqlite3"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sqlite_template, target)
        return f"sqlite+aiosqlite:///{target}"
    pg: _Postgres = request.getfixturevalue("postgres")
    asyncio.run(pg.truncate())
    assert pg.url
    return pg.url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return Settings(
        data_dir=data,
        database_url=db_url,
        policies_dir=POLICIES,
        public_url="http://testserver.local",
        client_cache_seconds=0.0,
    )


@pytest.fixture
async def vault(settings: Settings, clock: FrozenClock) -> AsyncIterator[VaultContext]:
    LocalKeyring.create(settings.keyring_path)
    ctx = VaultContext.open(settings, clock=clock)
    yield ctx
    # Sign-in mails go out on background tasks that hold a connection while they queue;
    # the server waits for them on shutdown, and so does a test's vault before it closes.
    await wait_for_mail()
    await ctx.close()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every structlog line the app writes during the test, as JSON text."""
    from api.logging import configure_logging

    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    yield stream
    configure_logging("INFO")


# --- The test process keeps its CPU priority ----------------------------------------------
# `tresor keys rotate`, `keys migrate-to-pkcs11` and `retention run` lower their process's
# priority by `--nice` (default 10). Called in-process without `--nice 0`, they would nice
# the whole test run for the rest of the session (an unprivileged process cannot undo it).
@pytest.fixture(autouse=True)
def _keeps_cpu_priority() -> Iterator[None]:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    yield
    after = os.getpriority(os.PRIO_PROCESS, 0)
    assert after == before, (
        f"the test reniced the test process from {before} to {after}: pass `--nice 0` to "
        "the CLI commands it calls in-process"
    )


# --- Leaked pool connections -------------------------------------------------------------
# A connection checked out of a pool and never returned is only noticed when the garbage
# collector finds it, which can be many tests later. With TRESOR_TEST_LEAKS=1 every
# checkout is tagged with the running test, and a test that ends with a connection of its
# own still checked out is reported by name at its teardown (as a failure).
if os.environ.get("TRESOR_TEST_LEAKS") == "1":
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    _OUTSTANDING: dict[int, str] = {}
    _RUNNING: list[str] = [""]

    @event.listens_for(Pool, "checkout")
    def _checked_out(dbapi_conn: object, record: object, proxy: object) -> None:
        _OUTSTANDING[id(record)] = _RUNNING[0]

    @event.listens_for(Pool, "checkin")
    def _checked_in(dbapi_conn: object, record: object) -> None:
        _OUTSTANDING.pop(id(record), None)

    @pytest.fixture(autouse=True)
    def _no_leaked_connections(request: pytest.FixtureRequest) -> Iterator[None]:
        _RUNNING[0] = request.node.nodeid
        yield
        left = [key for key, test in _OUTSTANDING.items() if test == request.node.nodeid]
        for key in left:
            _OUTSTANDING[key] = "(reported)"
        assert not left, f"{len(left)} pool connection(s) still checked out after the test"
