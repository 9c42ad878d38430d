"""The links of the audit chain: which columns of an event its MAC covers, in which
canonical encoding, and the MAC itself (`vault.audit.chain` seals with them, `verify` and
the archive check with them).

`mac = HMAC-SHA256(audit_key, previous mac | position | canonical event)`, starting from
`GENESIS`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Select, and_, select

from vault.clock import as_utc
from vault.crypto import Mac
from vault.errors import InvariantViolation
from vault.storage.audit_tables import audit_events, audit_seals

if TYPE_CHECKING:
    from vault.context import VaultContext

GENESIS = "0" * 64


EVENT_COLUMNS = (
    "seq",
    "at",
    "request_id",
    "actor_type",
    "actor_id",
    "action",
    "subject_id",
    "purpose",
    "fields",
    "decision",
    "reason",
    "consent_id",
    "detail",
)


_AT = EVENT_COLUMNS.index("at")
if EVENT_COLUMNS[0] != "seq":
    raise InvariantViolation(
        "expected EVENT_COLUMNS[0] == 'seq': the sealer reads records by position"
    )
#: The chain's canonical encoding is compact JSON of a list of strings, integers and nulls,
#: UTF-8, nothing escaped but what JSON requires: `json.JSONEncoder(separators=(",", ":"),
#: ensure_ascii=False)` wrote it first; msgspec writes the same bytes faster
#: (docs/performance.md; tests/vault/audit/test_chain.py proves the two agree, so existing
#: chains still verify).
_CANONICAL = msgspec.json.Encoder()


def canonical_event(row: Any) -> bytes:
    """The bytes the MAC covers: every column of the event except the chain columns.

    `row` is anything that yields columns by name: a dict, an asyncpg record, a SQLAlchemy
    row (through its mapping)."""
    by_name = getattr(row, "_mapping", row)
    return _canonical_values([by_name[name] for name in EVENT_COLUMNS])


def _canonical_values(values: list[Any]) -> bytes:
    """`canonical_event` of the event's column values in `EVENT_COLUMNS` order (a fresh
    list: its timestamp is replaced in place)."""
    at = values[_AT]  # the only timestamp among the columns
    if isinstance(at, datetime):
        values[_AT] = as_utc(at).isoformat()
    return _CANONICAL.encode(values)


def _chain_key(ctx: VaultContext) -> Mac:
    """The chain's MAC: under `audit_key`, a random secret of the keyring that serves this
    one MAC (not derived from the server secret: that would change every stored seal)."""
    return Mac(ctx.secrets.audit_key)


def chain_mac(key: Mac, previous: str, position: int, row: Any) -> str:
    return _mac(key, previous, position, canonical_event(row))


def chain_message(previous: str, position: int, canonical: bytes) -> bytes:
    """What an event's MAC covers: the MAC before it, its chain position and its canonical
    values (`canonical_event`), so an event cannot be moved, dropped or changed unseen."""
    return f"{previous}|{position}|".encode() + canonical


def _mac(key: Mac, previous: str, position: int, canonical: bytes) -> str:
    return key.digest(chain_message(previous, position, canonical))


#: Events with their seal (chain_pos and chain_mac are NULL for an unsealed event), for
#: readers that show or export whether an event is sealed.
EVENTS_WITH_SEALS = audit_events.outerjoin(audit_seals, audit_seals.c.seq == audit_events.c.seq)


def events_with_seals_between(after: Any, last: Any) -> Any:
    """`EVENTS_WITH_SEALS` for the events after `after` up to `last`, with the same bounds
    on the seals inside the join: without them PostgreSQL joins every seal of the trail
    (a merge join from the first seal for each page, or a hash of all 10 M seals with
    temporary files for one month's check), so a page or a month costs O(the trail)."""
    return audit_events.outerjoin(
        audit_seals,
        and_(
            audit_seals.c.seq == audit_events.c.seq,
            audit_seals.c.seq > after,
            audit_seals.c.seq <= last,
        ),
    )


def select_events_with_seals() -> Select[Any]:
    """`SELECT` of every event column plus `chain_pos` and `chain_mac` from its seal."""
    return select(audit_events, audit_seals.c.chain_pos, audit_seals.c.chain_mac).select_from(
        EVENTS_WITH_SEALS
    )
