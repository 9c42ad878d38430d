"""The keys a rotation re-wraps and what its batch loop needs, shared by the key-order
loop (`vault.admin.rewrap`) and the page-order one (`vault.admin.rewrap_pages`), which the
first runs and hands its batch steps to, so neither module imports the other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.clock import Clock
from vault.crypto import retained_key_id
from vault.crypto.envelope import DekManager
from vault.crypto.keyring import KekProvider
from vault.recipients.registry import secret_key_id
from vault.storage.recipient_tables import recipient_secrets
from vault.storage.rights_tables import retained_fields
from vault.storage.tables import subjects


@dataclass(frozen=True, slots=True)
class WrappedKeys:
    """A table whose rows hold a key wrapped by the KEK, and what each wrap is bound to."""

    name: str
    table: Table
    key_column: str
    audit_detail: dict[str, str]

    def wrap_id(self, row_id: str) -> str:
        if self.table is retained_fields:
            return retained_key_id(row_id)
        if self.table is recipient_secrets:
            return secret_key_id(row_id)
        return row_id

    def wrap_ids(self, olds: list[tuple[str, int, bytes]]) -> list[tuple[str, int, bytes]]:
        """`olds` (id, version, blob) with each id replaced by what its wrap is bound to."""
        if self.table is subjects:
            return olds
        return [(self.wrap_id(i), v, b) for i, v, b in olds]


SUBJECT_DEKS = WrappedKeys("subjects", subjects, "wrapped_dek", {})
#: Keys of fields kept after erasure (Art. 17(3)); a KEK version they need must not retire.
RETAINED_KEYS = WrappedKeys("retained", retained_fields, "wrapped_key", {"keys": "retained"})
#: Recipients' webhook signing secrets (issue 16), wrapped by the KEK like a DEK.
RECIPIENT_SECRETS = WrappedKeys(
    "recipient_secrets", recipient_secrets, "wrapped_key", {"keys": "recipient_secrets"}
)
KINDS = {k.name: k for k in (SUBJECT_DEKS, RETAINED_KEYS, RECIPIENT_SECRETS)}


class RewrapEnv(Protocol):
    """What the batch loop needs: `VaultContext` has it, and so has a worker's `_WorkerEnv`."""

    deks: DekManager
    kek: KekProvider
    clock: Clock

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


Read = Callable[[Any, dict[str, Any]], Awaitable[Sequence[Any]]]
