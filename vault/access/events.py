"""Audit: the one way a lookup's events are built, for a single lookup and a batch line.

One event per identifier, allowed or denied, as a record in `audit.EVENT_COLUMNS` order
(what `audit.event_row` would make; tests/vault/access/test_bulk.py and
test_batch_equals_single.py compare them). Ids, the purpose and field names only, never a
value or the identifier itself: a line of a batch is named by its index `i`, a denial
without a resolved subject carries a subject id only when the input was a well-formed one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from vault.access.judge import Outcome
from vault.audit.events import Actor, AuditAction, Decision, EventRecord
from vault.errors import InvariantViolation
from vault.subjects.decision import DenyReason
from vault.subjects.outbound import OutboundContact, Reservation

_LOOKUP, _ALLOW, _DENY = str(AuditAction.LOOKUP), str(Decision.ALLOW), str(Decision.DENY)


def contact_detail(contact: OutboundContact, reserved: Reservation | None) -> dict[str, object]:
    """An announced contact as the audit detail keeps it (and what it reserved)."""
    out: dict[str, object] = {
        "brand": contact.brand,
        "channel": contact.channel,
        "type": contact.type,
        "priority": contact.priority,
    }
    if reserved is not None:
        out["id"] = reserved.contact_id
        out["points"] = reserved.points
    return out


_SINGLE_DETAIL: dict[str, str] = {}


def _single_detail(kind: str) -> str:
    """A single lookup's detail without a contact, `{"by": kind}`: the same few strings for
    every lookup, so encoded once per kind (the hot path pays a dict lookup, not a dump)."""
    detail = _SINGLE_DETAIL.get(kind)
    if detail is None:
        detail = _SINGLE_DETAIL[kind] = json.dumps({"by": kind})
    return detail


class LookupEvents:
    """The events of one request: a single lookup (`batch=False`, detail `{"by"}`) or a
    batch (detail `{"batch", "by", "i"}`), each with the announced contact if any."""

    __slots__ = ("actor", "purpose", "kind", "now", "contact", "batch", "_denied", "_fixed")

    def __init__(
        self,
        actor: Actor,
        purpose_label: str,
        kind: str,
        requested: Sequence[str] | None,
        now: datetime,
        contact: OutboundContact | None,
        *,
        batch: bool,
    ) -> None:
        self.actor, self.purpose, self.kind, self.now = actor, purpose_label, kind, now
        self.contact, self.batch = contact, batch
        #: A denial lists the fields as asked for (None: the purpose's).
        self._denied = ",".join(requested) if requested else None
        #: The detail string every line shares, up to its index (batch) or whole (single).
        self._fixed = (
            '{"batch": ' + json.dumps(actor.request_id) + ', "by": ' + json.dumps(kind) + ', "i": '
            if batch
            else _single_detail(kind)
        )

    def _detail(self, i: int, reserved: Reservation | None) -> str:
        if self.contact is None:
            return self._fixed + str(i) + "}" if self.batch else self._fixed  # == json.dumps
        full: dict[str, Any] = (
            {"batch": self.actor.request_id, "by": self.kind, "i": i}
            if self.batch
            else {"by": self.kind}
        )
        full["contact"] = contact_detail(self.contact, reserved)
        return json.dumps(full, sort_keys=True)

    def records(
        self, outcomes: Sequence[Outcome], start: int, fallback_ids: Sequence[str | None]
    ) -> list[EventRecord]:
        """One event per outcome (the line `start + j`); `fallback_ids[j]`: the subject id a
        denial without a resolved subject records (a well-formed input id, else None)."""
        actor, now, pid, denied = self.actor, self.now, self.purpose, self._denied
        rid, atype, aid = actor.request_id, actor.type, actor.id
        out: list[EventRecord] = []
        every_field: tuple[tuple[str, ...], str] | None = None  # (fields, as listed)
        for j, o in enumerate(outcomes):
            detail = self._detail(start + j, o.reservation)
            allow, data = o.allow, o.data
            if allow is not None:
                if data is None:
                    raise InvariantViolation("an allowed outcome reached the audit unrevealed")
                if len(data) == len(allow.fields):  # the usual case: every field present
                    if every_field is None or every_field[0] is not allow.fields:
                        every_field = (allow.fields, ",".join(sorted(allow.fields)))
                    listed: str | None = every_field[1]
                else:
                    listed = ",".join(sorted(data)) or None
                out.append(
                    (now, rid, atype, aid, _LOOKUP, o.row["id"], pid, listed, _ALLOW, None,
                     allow.basis.id, detail)
                )  # fmt: skip
                continue
            if o.row is not None:
                subject_id = o.row["id"]
            elif o.reason == DenyReason.AMBIGUOUS_IDENTIFIER:
                subject_id = None
            else:
                subject_id = fallback_ids[j]
            out.append(
                (now, rid, atype, aid, _LOOKUP, subject_id, pid, denied, _DENY, str(o.reason),
                 None, detail)
            )  # fmt: skip
        return out
