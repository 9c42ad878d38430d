"""The vault's services wired together: one object the API (and the CLI) hold.

Everything stateful that matters lives in the database; what sits here is configuration,
immutable policy and caches (unwrapped DEKs, verified clients), so any number of processes
can share one PostgreSQL.

This is the composition root: it may import every area (it builds the catalogues, the
keyring, the engines, the audit group commit). The areas take a `VaultContext` as an
argument and name the class only under `TYPE_CHECKING`, so no area depends on it at run
time and the layering (docs/architecture.md) has no cycle through it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.audit.batch import AuditBatcher, postgres_writer
from vault.audit.events import EventRecord, record_records
from vault.catalogue.contact_pressure import PressureRules
from vault.catalogue.loader import load_policies
from vault.catalogue.purposes import PurposeCatalogue
from vault.catalogue.touchpoints import TouchpointCatalogue
from vault.clock import Clock, SystemClock
from vault.crypto import BlindIndexer, DekManager, DerivedKeys, KeyringError, LocalKeyring
from vault.crypto.keyring import KekProvider, ServerSecrets
from vault.crypto.pkcs11_provider import Pkcs11KekProvider, keks_moved_to_token, read_pin
from vault.errors import InvariantViolation, Unavailable
from vault.mail import Mailer, make_mailer
from vault.settings import Settings
from vault.storage.db import make_engine, make_read_engine
from vault.storage.pg_direct import Compiled, DirectPool


@dataclass
class VaultContext:
    settings: Settings
    engine: AsyncEngine
    catalogue: PurposeCatalogue
    kek: KekProvider
    secrets: ServerSecrets
    deks: DekManager
    indexer: BlindIndexer
    #: The keys derived by label from the server secret (`vault.crypto.derive`).
    keys: DerivedKeys
    mailer: Mailer
    clock: Clock
    pressure_rules: PressureRules
    touchpoints: TouchpointCatalogue
    #: PostgreSQL only: the raw asyncpg pool of the hot paths and its audit group commit
    #: (`vault.storage.pg_direct`, `vault.audit.batch`); None on SQLite.
    direct: DirectPool | None = field(default=None)
    audit_batcher: AuditBatcher | None = field(default=None)
    _gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )

    #: SQLite only: a second engine whose transactions are plain (deferred) read
    #: snapshots beside the single writer (WAL), for the hot paths' reads.
    read_engine: AsyncEngine | None = field(default=None)
    _compiled: dict[int, tuple[Select[Any], Compiled]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        url = self.engine.url.render_as_string(hide_password=False)
        if self.direct is None and self.engine.dialect.name == "postgresql":
            self.direct = DirectPool(url, max_size=max(4, self.settings.db_pool_size // 2))
            self.audit_batcher = AuditBatcher(postgres_writer(self.direct))
        elif self.engine.dialect.name == "sqlite" and self.read_engine is None:
            self.read_engine = make_read_engine(url)
            self.audit_batcher = AuditBatcher(self._write_events)

    async def _write_events(self, records: Sequence[EventRecord]) -> None:
        """SQLite's group commit: one write transaction (one fsync) for the whole batch."""
        async with self.transaction() as conn:
            await record_records(conn, records)

    async def read_rows(self, statement: Select[Any], params: dict[str, Any]) -> list[Any]:
        """Run a read-only statement outside any write transaction; rows index by column
        name. PostgreSQL: one autocommit statement on the raw pool (compiled once per
        statement); SQLite: a read snapshot on the read engine. Storage errors are
        `Unavailable`."""
        if self.direct is not None:
            # Keyed by identity; the entry keeps the statement alive, so its id is not reused.
            entry = self._compiled.get(id(statement))
            if entry is None or entry[0] is not statement:
                entry = self._compiled[id(statement)] = (statement, Compiled(statement))
            return await self.direct.fetch(entry[1], params)
        if self.read_engine is None:
            raise InvariantViolation("self.read_engine is unset")
        try:
            async with self.read_engine.connect() as conn:
                return list((await conn.execute(statement, params)).mappings())
        except (SQLAlchemyError, OSError) as exc:
            raise Unavailable("storage is unavailable; nothing was changed or revealed") from exc

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        mailer: Mailer | None = None,
        engine: AsyncEngine | None = None,
    ) -> VaultContext:
        """Load policies and keys and build the engine; raises on a bad catalogue or keyring."""
        policies = load_policies(settings.policies_dir)
        keyring = open_kek_provider(settings)
        clock = clock or SystemClock()
        return cls(
            settings=settings,
            engine=engine
            or make_engine(settings.effective_database_url, pool_size=settings.db_pool_size),
            catalogue=policies.purposes,
            kek=keyring,
            secrets=keyring.secrets,
            deks=DekManager(keyring, settings.dek_cache_size),
            indexer=BlindIndexer(keyring.secrets.index_key),
            keys=DerivedKeys(keyring.secrets.client_key),
            # The file outbox names its files by the vault's clock, which its pruning uses.
            mailer=mailer or make_mailer(settings.smtp_url, settings.outbox_dir, clock),
            clock=clock,
            pressure_rules=policies.pressure_rules,
            touchpoints=policies.touchpoints,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One database transaction; storage and keyring failures become `Unavailable`.

        The transaction commits when the block exits normally, so a caller returns data only
        after the audit event written inside it is durable.
        """
        gate = self._write_gate()
        try:
            if gate is None:
                async with self.engine.begin() as conn:
                    yield conn
            else:
                async with gate, self.engine.begin() as conn:
                    yield conn
        except SQLAlchemyError as exc:
            raise Unavailable("storage is unavailable; nothing was changed or revealed") from exc
        except KeyringError as exc:
            raise Unavailable("keyring is unavailable; nothing was changed or revealed") from exc
        except OSError as exc:
            raise Unavailable("storage is unavailable; nothing was changed or revealed") from exc

    def _write_gate(self) -> asyncio.Lock | None:
        """SQLite only: transactions of this process queue here for SQLite's single write
        lock (`BEGIN IMMEDIATE`) instead of polling it through the busy handler, whose
        growing sleeps made the tail latency under concurrency long (docs/performance.md).
        Other processes still meet at the busy handler. One lock per event loop."""
        if self.engine.dialect.name != "sqlite":
            return None
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Lock()
        return gate

    async def close(self) -> None:
        if self.audit_batcher is not None:
            await self.audit_batcher.drain()
        if self.direct is not None:
            await self.direct.close()
        if self.read_engine is not None:
            await self.read_engine.dispose()
        await self.engine.dispose()
        close_kek = getattr(self.kek, "close", None)
        if close_kek is not None:
            close_kek()  # a PKCS#11 session; the local keyring holds nothing open


def open_kek_provider(settings: Settings) -> LocalKeyring | Pkcs11KekProvider:
    """The KEK provider TRESOR_KEK_PROVIDER names; raises `KeyringError` if it won't open."""
    if settings.kek_provider == "local":
        try:
            return LocalKeyring(settings.keyring_path)
        except KeyringError as exc:
            if keks_moved_to_token(settings.keyring_path):
                raise KeyringError(
                    "the keyring file holds no KEK: they live on a PKCS#11 token since the "
                    "migration; set TRESOR_KEK_PROVIDER=pkcs11 and the TRESOR_PKCS11_* settings"
                ) from exc
            raise
    if settings.kek_provider == "pkcs11":
        return Pkcs11KekProvider.open(
            keyring_path=settings.keyring_path,
            module=settings.pkcs11_module,
            token_label=settings.pkcs11_token,
            pin=read_pin(settings.pkcs11_pin, settings.pkcs11_pin_file),
        )
    raise KeyringError(
        f"unknown TRESOR_KEK_PROVIDER {settings.kek_provider!r}: use `local` (the keyring "
        "file) or `pkcs11` (a PKCS#11 token)"
    )
