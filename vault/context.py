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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault import mail_outbox
from vault.audit.batch import AuditBatcher, EventWriter, copy_writer
from vault.audit.events import EventRecord, record_records
from vault.catalogue.contact_pressure import PressureRules
from vault.catalogue.controller import ControllerSettings
from vault.catalogue.loader import load_policies
from vault.catalogue.purposes import PurposeCatalogue
from vault.catalogue.touchpoints import TouchpointCatalogue
from vault.clock import Clock, SystemClock
from vault.crypto import BlindIndexer, DekManager, DerivedKeys, KeyringError, LocalKeyring
from vault.crypto.keyring import KekProvider, ServerSecrets
from vault.crypto.pkcs11_provider import Pkcs11KekProvider, keks_moved_to_token
from vault.crypto.pkcs11_session import read_pin
from vault.errors import Unavailable
from vault.mail import Mailer, make_mailer
from vault.rights.requests.objection import pending_purposes
from vault.settings import Settings
from vault.sms import FileSmsOutbox, SmsGateway
from vault.storage.db import make_engine
from vault.storage.dialect import serialises_writers
from vault.storage.errors import STORAGE_ERRORS, UNAVAILABLE
from vault.storage.ports import HotOptions, HotStorage, ReadPort, open_hot_storage
from vault.storage.wakeup import close_wakers, committed


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
    #: The controller, its DPO and third-country transfers (`policies/controller.toml`).
    controller: ControllerSettings
    #: The SMS gateway (`vault.sms`): sign-in codes for customers known only by a phone
    #: number. The file outbox in the data dir until a provider is configured.
    sms: SmsGateway
    #: The hot paths' storage ports, chosen once from the engine here (the composition
    #: root): `reads` runs a read outside any write transaction (the raw asyncpg pool on
    #: PostgreSQL, plain `sqlite3` connections in worker threads on SQLite:
    #: `vault.storage.ports`), `audit_batcher` is the audit group commit
    #: (`vault.audit.batch`: one COPY on the raw pool, or one transaction of SQLite's
    #: writer thread). Set by `__post_init__`.
    reads: ReadPort = field(init=False, repr=False)
    audit_batcher: AuditBatcher = field(init=False, repr=False)
    _hot: HotStorage = field(init=False, repr=False)
    #: Whether the database takes one writer at a time (SQLite): see `_write_gate`.
    _serialised: bool = field(init=False, repr=False, default=False)
    _gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )

    def __post_init__(self) -> None:
        hot = self._hot = open_hot_storage(
            self.engine,
            HotOptions(self.settings.db_pool_size, self.settings.sqlite_synchronous),
        )
        self.reads = hot.reads
        self._serialised = serialises_writers(self.engine)
        writer: EventWriter = self._write_events
        if hot.copy is not None:
            writer = copy_writer(hot.copy)
            if self._serialised:
                writer = self._gated(writer)
        self.audit_batcher = AuditBatcher(writer)

    def _gated(self, write: EventWriter) -> EventWriter:
        """SQLite's writer thread takes the process's write gate like every transaction
        (`_write_gate`), so it queues in order instead of in SQLite's busy handler."""

        async def gated(records: Sequence[EventRecord]) -> None:
            gate = self._write_gate()
            if gate is None:
                await write(records)
                return
            async with gate:
                await write(records)

        return gated

    async def _write_events(self, records: Sequence[EventRecord]) -> None:
        """Group commit without a COPY pool (SQLite): one write transaction (one fsync)
        for the whole batch."""
        async with self.transaction() as conn:
            await record_records(conn, records)

    async def read_rows(self, statement: Select[Any], params: dict[str, Any]) -> list[Any]:
        """Run a read-only statement outside any write transaction (`reads`); rows index by
        column name. Storage errors are `Unavailable`."""
        return list(await self.reads.rows(statement, params))

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        mailer: Mailer | None = None,
        engine: AsyncEngine | None = None,
        sms: SmsGateway | None = None,
    ) -> VaultContext:
        """Load policies and keys and build the engine; raises on a bad catalogue or keyring."""
        policies = load_policies(settings.policies_dir)
        keyring = open_kek_provider(settings)
        clock = clock or SystemClock()
        return cls(
            settings=settings,
            engine=engine
            or make_engine(
                settings.effective_database_url,
                pool_size=settings.db_pool_size,
                sqlite_synchronous=settings.sqlite_synchronous,
            ),
            catalogue=policies.purposes,
            kek=keyring,
            secrets=keyring.secrets,
            deks=DekManager(keyring, settings.dek_cache_size),
            indexer=BlindIndexer(keyring.secrets.index_key),
            keys=DerivedKeys(keyring.secrets.client_key),
            # The file outbox names its files by the vault's clock, which its pruning uses.
            mailer=mailer
            or make_mailer(
                settings.smtp_url,
                settings.outbox_dir,
                clock,
                settings.smtp_tls,
                footer=policies.controller.mail_footer,
            ),
            clock=clock,
            pressure_rules=policies.pressure_rules,
            touchpoints=policies.touchpoints,
            controller=policies.controller,
            sms=sms or FileSmsOutbox(settings.sms_outbox_dir, clock),
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One database transaction; storage and keyring failures become `Unavailable`.

        The transaction commits when the block exits normally, so a caller returns data only
        after the audit event written inside it is durable. Mails it queued
        (`vault.mail_outbox.queue`) get their first attempt after the commit.
        """
        gate = self._write_gate()
        queued: list[str] = []
        try:
            if gate is None:
                async with self.engine.begin() as conn:
                    queued = mail_outbox.track(conn)
                    try:
                        yield conn
                    finally:
                        mail_outbox.untrack(conn)
            else:
                async with gate, self.engine.begin() as conn:
                    queued = mail_outbox.track(conn)
                    try:
                        yield conn
                    finally:
                        mail_outbox.untrack(conn)
            # Committed: now the wake-ups the transaction asked for may go (never on a
            # rollback, never inside the transaction: `storage.wakeup`).
            committed(conn)
        except STORAGE_ERRORS as exc:
            raise Unavailable(UNAVAILABLE) from exc
        except KeyringError as exc:
            raise Unavailable("keyring is unavailable; nothing was changed or revealed") from exc
        if queued:
            # Committed: the first attempt at the mails it queued (`vault.mail_outbox`).
            await mail_outbox.send_after_commit(self, queued)

    def _write_gate(self) -> asyncio.Lock | None:
        """SQLite only: transactions of this process queue here for SQLite's single write
        lock (`BEGIN IMMEDIATE`) instead of polling it through the busy handler, whose
        growing sleeps made the tail latency under concurrency long (docs/performance.md).
        Other processes still meet at the busy handler. One lock per event loop."""
        if not self._serialised:
            return None
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Lock()
        return gate

    async def objected_purposes(self, conn: AsyncConnection, subject_id: str) -> set[str]:
        """The purposes the subject's open Art. 21(1) objections name, read in `conn`'s
        transaction (`vault.rights.requests.objection`). Recording a basis asks through the
        context because the bases layer may not import the request workflow: a basis
        recorded while such an objection is open is restricted from its first moment."""
        return await pending_purposes(self, conn, subject_id)

    async def close(self) -> None:
        await self.audit_batcher.drain()
        await self.reads.close()
        await close_wakers(self.engine)
        if self._hot.copy is not None:  # on PostgreSQL the reads' pool: closing twice is fine
            await self._hot.copy.close()
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
