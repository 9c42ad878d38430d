"""The vault's services wired together: one object the API (and the CLI) hold.

Everything stateful that matters lives in the database; what sits here is configuration,
immutable policy and caches (unwrapped DEKs, verified clients), so any number of processes
can share one PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.clock import Clock, SystemClock
from vault.crypto import BlindIndexer, DekManager, KeyringError, LocalKeyring
from vault.crypto.keyring import KekProvider, ServerSecrets
from vault.errors import Unavailable
from vault.mail import Mailer, make_mailer
from vault.policies import PurposeCatalogue, load_catalogue
from vault.pressure import PressureRules, load_rules
from vault.settings import Settings
from vault.storage.db import make_engine
from vault.touchpoints import TouchpointCatalogue, load_touchpoints


@dataclass
class VaultContext:
    settings: Settings
    engine: AsyncEngine
    catalogue: PurposeCatalogue
    kek: KekProvider
    secrets: ServerSecrets
    deks: DekManager
    indexer: BlindIndexer
    mailer: Mailer
    clock: Clock
    pressure_rules: PressureRules
    touchpoints: TouchpointCatalogue

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
        catalogue = load_catalogue(settings.policies_dir)
        pressure_rules = load_rules(settings.policies_dir)
        touchpoints = load_touchpoints(settings.policies_dir)
        keyring = LocalKeyring(settings.keyring_path)
        return cls(
            settings=settings,
            engine=engine
            or make_engine(settings.effective_database_url, pool_size=settings.db_pool_size),
            catalogue=catalogue,
            kek=keyring,
            secrets=keyring.secrets,
            deks=DekManager(keyring, settings.dek_cache_size),
            indexer=BlindIndexer(keyring.secrets.index_key),
            mailer=mailer or make_mailer(settings.smtp_url, settings.outbox_dir),
            clock=clock or SystemClock(),
            pressure_rules=pressure_rules,
            touchpoints=touchpoints,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One database transaction; storage and keyring failures become `Unavailable`.

        The transaction commits when the block exits normally, so a caller returns data only
        after the audit event written inside it is durable.
        """
        try:
            async with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise Unavailable("storage is unavailable; nothing was changed or revealed") from exc
        except KeyringError as exc:
            raise Unavailable("keyring is unavailable; nothing was changed or revealed") from exc
        except OSError as exc:
            raise Unavailable("storage is unavailable; nothing was changed or revealed") from exc

    async def close(self) -> None:
        await self.engine.dispose()
