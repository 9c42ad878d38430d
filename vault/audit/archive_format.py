"""The bytes of an archived audit segment and of the archive's manifest.

A segment is gzip'd JSON Lines: a header (month, sequence and chain range, the MAC the
segment starts from), one line per event (its stored columns, chain position and MAC), and
a trailer with the Ed25519 checkpoint at the segment's last position. Each event line holds
the values the MAC covers exactly as `vault.audit.chain_links.canonical_event` encodes them, so
a segment is verified with the chain key alone, without the database.

gzip is written with a zero time stamp and no file name, so the same month archived twice
(a run resumed after a crash) gives the same bytes and the same SHA-256.

The manifest lists every segment with its SHA-256 and chain range; its body is kept as the
exact string that was signed, so checking it does not depend on re-encoding JSON.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from vault.audit.chain_links import EVENT_COLUMNS
from vault.audit.checkpoints import Checkpoint
from vault.clock import as_utc
from vault.crypto import Signer, VerifyKey

FORMAT = 1
MANIFEST_NAME = "audit-manifest.json"
_ENCODE = msgspec.json.Encoder()
_AT = EVENT_COLUMNS.index("at")


def segment_name(month: str) -> str:
    return f"audit-{month}.jsonl.gz"


def header_line(
    month: str, first_seq: int, last_seq: int, first_pos: int, last_pos: int, events: int,
    prev_mac: str,
) -> bytes:  # fmt: skip
    return _line(
        {
            "kind": "header",
            "v": FORMAT,
            "month": month,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "first_pos": first_pos,
            "last_pos": last_pos,
            "events": events,
            "prev_mac": prev_mac,
        }
    )


#: An event line's object as structs: msgspec writes a struct's fields in their declared
#: order, exactly as it writes a dict with the same keys in the same order, so the bytes are
#: those the dict wrote before (old segments and new ones are alike; tests prove it) for a
#: quarter of the CPU: no dict built per event. `_Event` has one field per `EVENT_COLUMNS`.
_Event = msgspec.defstruct("_Event", [(name, Any) for name in EVENT_COLUMNS], gc=False)


class _EventLine(msgspec.Struct, gc=False):
    kind: str
    chain_pos: int
    mac: str
    event: Any


def event_line(values: list[Any], chain_pos: int, mac: str) -> bytes:
    """`values` in `EVENT_COLUMNS` order; the time stamp as the chain encodes it."""
    at = values[_AT]
    if isinstance(at, datetime):
        values = list(values)
        values[_AT] = as_utc(at).isoformat()
    return encoded_event(values, chain_pos, mac) + b"\n"


def encoded_event(values: list[Any], chain_pos: int, mac: str) -> bytes:
    """An event line without its newline, from `values` whose time stamp is already the
    chain's string (`vault.audit.chain_links._canonical_values` leaves it so): the archive's
    inner loop, which joins a page's lines itself. Too few or too many values are a
    `TypeError`, as the struct takes exactly one per column."""
    return _ENCODE.encode(_EventLine("event", chain_pos, mac, _Event(*values)))


def trailer_line(events: int, last_mac: str, checkpoint: Checkpoint) -> bytes:
    return _line(
        {
            "kind": "trailer",
            "events": events,
            "last_mac": last_mac,
            "checkpoint": msgspec.json.decode(checkpoint.line()),
        }
    )


def _line(value: dict[str, Any]) -> bytes:
    return _ENCODE.encode(value) + b"\n"


def sha256_file(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- manifest ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """One segment as the manifest (and the `audit_archives` table) lists it."""

    month: str
    name: str
    first_seq: int
    last_seq: int
    first_pos: int
    last_pos: int
    events: int
    prev_mac: str
    last_mac: str
    sha256: str


def _manifest_message(body: str) -> bytes:
    return b"tresor-audit-archive-manifest|v1|" + hashlib.sha256(body.encode()).digest()


def manifest_bytes(entries: list[SegmentEntry], signer: Signer, at: datetime) -> bytes:
    """The signed manifest of `entries` (in chain order)."""
    body = _ENCODE.encode(
        {
            "v": FORMAT,
            "at": as_utc(at).isoformat(),
            "segments": [msgspec.structs.asdict(_Entry(**_fields(e))) for e in entries],
        }
    ).decode()
    signature = base64.b64encode(signer.sign(_manifest_message(body))).decode()
    return (
        _ENCODE.encode({"body": body, "key_id": signer.verify_key.key_id, "signature": signature})
        + b"\n"
    )


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    month: str
    name: str
    first_seq: int
    last_seq: int
    first_pos: int
    last_pos: int
    events: int
    prev_mac: str
    last_mac: str
    sha256: str


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    at: str
    segments: list[_Entry]


class _Signed(msgspec.Struct, forbid_unknown_fields=True):
    body: str
    key_id: str
    signature: str


def _fields(entry: SegmentEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in SegmentEntry.__slots__}


def read_manifest(data: bytes, public: VerifyKey) -> list[SegmentEntry]:
    """The manifest's segments; `ValueError` for a malformed or badly signed manifest."""
    try:
        signed = msgspec.json.decode(data, type=_Signed)
        raw = base64.b64decode(signed.signature, validate=True)
        if not public.verify(raw, _manifest_message(signed.body)):
            raise ValueError("the archive manifest has a bad signature")
        body = msgspec.json.decode(signed.body, type=_Body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError("the archive manifest is malformed") from exc
    return [SegmentEntry(**msgspec.structs.asdict(e)) for e in body.segments]
