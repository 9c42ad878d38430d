"""Decide: the purpose decision for every identifier of a read, the same for one or many.

Pure (the stored data are opened by the `reveal` callback it is given, if any): the rows a
key matched give not found, ambiguous, or `decide()` over that subject's records for the
purpose. A key named twice in one chunk is decided once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from vault.catalogue.purposes import Purpose
from vault.storage.ports import Row
from vault.subjects.decision import Allow, BasisFacts, Deny, DenyReason, decide

INVALID_IDENTIFIER = "invalid_identifier"
#: A subject named twice in one batch that reserves contacts: only its first line counts.
DUPLICATE_IDENTIFIER = "duplicate_identifier"


class Outcome(NamedTuple):
    """The decision for one identifier: allowed (row + Allow) or a deny reason. A named
    tuple: one is built per identifier, and a tuple is cheaper to make than a frozen
    dataclass."""

    reason: str | None
    #: The subject's row as read (indexes by column name).
    row: Any = None
    allow: Allow | None = None
    reservation: Any = None
    #: The allowed fields, decrypted (and the row checked) before any reservation.
    data: dict[str, Any] | None = None


#: Opens a decided row: (row, key, allow or None) -> its outcome (`reveal.Opener`).
Reveal = Callable[[Any, str, Allow | None], Outcome]

#: Outcomes without a subject are the same every time (immutable): built once.
INVALID = Outcome(INVALID_IDENTIFIER)
NOT_FOUND = Outcome(DenyReason.SUBJECT_NOT_FOUND)
AMBIGUOUS = Outcome(DenyReason.AMBIGUOUS_IDENTIFIER)


def verdict_of(
    hits: Sequence[Row],
    purpose: Purpose,
    fields: tuple[str, ...],
    now: datetime,
    brand: str | None = None,
) -> Allow | Deny:
    """The decision for the rows one key matched (at least one), for a contact of `brand`
    (None: no contact announced)."""
    first = hits[0]
    if len(hits) > 1 and any(r["id"] != first["id"] for r in hits):
        return Deny(DenyReason.AMBIGUOUS_IDENTIFIER)
    facts = [
        BasisFacts(
            r["b_id"],
            r["b_basis"],
            r["b_status"],
            r["b_expires_at"],
            r["b_deadline"],
            r["b_excluded"],
            r["b_brands"],
            r["b_objected"],
        )
        for r in hits
        if r["b_id"] is not None
    ]
    return decide(purpose, fields, first["status"], facts, now, brand)


def decide_keys(
    rows: Sequence[Row],
    purpose: Purpose,
    fields: tuple[str, ...],
    keys: Sequence[str | None],
    now: datetime,
    reveal: Reveal | None = None,
    brand: str | None = None,
) -> list[Outcome]:
    """One outcome per key (None: an invalid identifier), from the rows of one read, for a
    contact of `brand` (None: none announced)."""
    by_key: dict[str, list[Row]] = {}
    for r in rows:
        k = r["k"]
        hits = by_key.get(k)
        if hits is None:
            by_key[k] = [r]
        else:
            hits.append(r)
    decided: dict[str, Outcome] = {}
    out: list[Outcome] = []
    for key in keys:
        if key is None:
            out.append(INVALID)
            continue
        hit = decided.get(key)
        if hit is None:
            hit = decided[key] = _one(by_key.get(key), purpose, fields, key, now, reveal, brand)
        out.append(hit)
    return out


def _one(
    hits: list[Row] | None,
    purpose: Purpose,
    fields: tuple[str, ...],
    key: str,
    now: datetime,
    reveal: Reveal | None,
    brand: str | None,
) -> Outcome:
    if not hits:
        return NOT_FOUND
    verdict = verdict_of(hits, purpose, fields, now, brand)
    if isinstance(verdict, Deny) and verdict.reason is DenyReason.AMBIGUOUS_IDENTIFIER:
        return AMBIGUOUS
    first = hits[0]
    allow = verdict if isinstance(verdict, Allow) else None
    opened = reveal(first, key, allow) if reveal is not None else None
    if opened is not None and opened.reason is not None:
        return opened  # the stored data failed its check: no decision about it
    if allow is not None:
        return opened or Outcome(None, first, allow)
    return Outcome(verdict.reason if isinstance(verdict, Deny) else None, first)
