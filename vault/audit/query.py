"""The data-protection officer's search of the audit trail (statistics: `vault.audit.stats`).

Every read here is itself audited, in the same transaction as the read: the DPO's search
writes its event before the results leave the vault, so an audit read that cannot be
recorded reveals nothing (fail closed, like the lookup). Filters are validated strictly
(ids, names and tags only), so nothing a DPO types into a filter can put contact data into
the event that records the search.

Searches run newest first with a keyset cursor on the sequence number: pages never overlap
or skip, also while new events arrive (they sort in front of the first page).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, or_

from vault.audit import events as audit
from vault.audit.chain_links import select_events_with_seals
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput
from vault.storage.audit_tables import audit_events

if TYPE_CHECKING:
    from vault.context import VaultContext

MAX_LIMIT = 500
DEFAULT_LIMIT = 100

_SUBJECT_RE = re.compile(r"^[0-9a-f-]{36}$")
_CLIENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ACTION_RE = re.compile(r"^[a-z_]{1,40}(:[a-z_]{1,40}){0,2}$")


def _cursor_pattern() -> str:
    """Exactly the cursors `encode_cursor` can write: `c1.` and the unpadded base64url of
    1 to 18 ASCII digits (24 characters at most). Three digits are four characters, the
    first two set by the first digit, the third by the second, the fourth by the third; a
    rest of one or two digits is two or three characters. So the document's pattern says
    which cursors decode, and no cursor matching it is refused."""
    digits = [bytes([d]) for d in b"0123456789"]

    def chars(prefix: bytes, size: int, at: int) -> list[str]:
        out = {base64.urlsafe_b64encode(prefix + d + b"00")[at : at + size] for d in digits}
        return sorted(c.decode() for c in out)

    first_pair = "|".join(chars(b"", 2, 0))  # the first digit, a second one following
    third = "".join(chars(b"0", 1, 2))
    fourth = "".join(chars(b"00", 1, 3))
    triple = f"(?:{first_pair})[{third}][{fourth}]"
    one = "|".join(sorted({base64.urlsafe_b64encode(d).decode()[:2] for d in digits}))
    two = f"(?:{first_pair})[{''.join(chars(b'0', 1, 2))}]"
    return rf"^c1\.((?:{triple}){{1,6}}|(?:{triple}){{0,5}}(?:{one}|{two}))$"


#: The audit trail's page cursor (`CURSOR_PATTERN` is stated in the OpenAPI document).
CURSOR_PATTERN = _cursor_pattern()
_CURSOR_RE = re.compile(CURSOR_PATTERN)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What to search for; every field optional. `action` is a full `source:subject:action`
    tag or its last part(s), so `lookup` finds `client:contact:lookup`."""

    subject_id: str | None = None
    client: str | None = None
    purpose: str | None = None
    action: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Leave out the DPO's own page views (`events.PAGE_VIEWS`), as the console does by default.
    hide_views: bool = False

    def as_detail(self) -> dict[str, str]:
        out: dict[str, str] = {"hide_views": "yes"} if self.hide_views else {}
        for name in ("subject_id", "client", "purpose", "action", "decision"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class AuditItem:
    seq: int
    at: datetime
    actor_type: str
    actor_id: str
    action: str
    subject_id: str | None
    purpose: str | None
    fields: list[str]
    decision: str
    reason: str | None
    consent_id: str | None
    request_id: str | None
    sealed: bool


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditItem]
    next_cursor: str | None


# -- validation -------------------------------------------------------------------------------


#: The instants a time filter can name: the trail has nothing before the first and nothing
#: after the last, so a time outside them is moved to the nearest one (a range "since the
#: year 234" is the whole trail), not refused.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput(f"{name} needs a timezone", {name: "add Z or an offset"})
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):  # beyond year 1 or 9999 once in UTC
        return EARLIEST if value.year < 5000 else LATEST
    return min(max(utc, EARLIEST), LATEST)


def validate_filter(f: AuditFilter) -> AuditFilter:
    """The filter with times in UTC; `InvalidInput` naming each bad field (never its value)."""
    errors: dict[str, str] = {}
    if f.subject_id is not None and not _SUBJECT_RE.match(f.subject_id):
        errors["subject_id"] = "must be a subject id (UUID)"
    if f.client is not None and not _CLIENT_RE.match(f.client):
        errors["client"] = "must be a client name (lower-case letters, digits, . _ -)"
    if f.purpose is not None and (len(f.purpose) > 100 or not _PURPOSE_RE.match(f.purpose)):
        errors["purpose"] = "must be a purpose id such as newsletter.email"
    if f.action is not None and (len(f.action) > 64 or not _ACTION_RE.match(f.action)):
        errors["action"] = "must be an action tag such as client:contact:lookup, or lookup"
    if f.decision is not None and f.decision not in (Decision.ALLOW, Decision.DENY):
        errors["decision"] = "must be allow or deny"
    if errors:
        raise InvalidInput("invalid audit filter", errors)
    # An empty or reversed range is not an error: it selects no event (the conditions
    # `at >= since AND at < until` say so themselves).
    since = _utc(f.since, "since")
    until = _utc(f.until, "until")
    return AuditFilter(
        f.subject_id, f.client, f.purpose, f.action, f.decision, since, until, f.hide_views
    )


def encode_cursor(seq: int) -> str:
    raw = base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")
    return f"c1.{raw}"


def decode_cursor(cursor: str) -> int:
    """The sequence number a cursor continues below; `InvalidInput` for anything else."""
    bad = InvalidInput("invalid cursor", {"cursor": "use the next_cursor of a previous page"})
    m = _CURSOR_RE.match(cursor or "")
    if not m:
        raise bad
    try:
        text = base64.urlsafe_b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4)).decode()
    except ValueError:
        raise bad from None
    if not text.isdigit() or len(text) > 19:
        raise bad
    return int(text)


def action_condition(action: str) -> ColumnElement[bool]:
    """A full tag matches exactly; one or two trailing parts match the tag's end."""
    if action.count(":") == 2:
        return audit_events.c.action == action
    return or_(
        audit_events.c.action == action,
        audit_events.c.action.endswith(":" + action, autoescape=True),
    )


def conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
    c = audit_events.c
    out: list[ColumnElement[bool]] = []
    if f.subject_id is not None:
        out.append(c.subject_id == f.subject_id)
    if f.client is not None:
        out.append(c.actor_id == f.client)
    if f.purpose is not None:
        out.append(c.purpose == f.purpose)
    if f.action is not None:
        out.append(action_condition(f.action))
    if f.decision is not None:
        out.append(c.decision == f.decision)
    if f.since is not None:
        out.append(c.at >= f.since)
    if f.until is not None:
        out.append(c.at < f.until)
    if f.hide_views:
        out.append(c.action.not_in(sorted(audit.PAGE_VIEWS)))
    return out


def audit_item(row: Any) -> AuditItem:
    return AuditItem(
        seq=row.seq,
        at=as_utc(row.at),
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        action=row.action,
        subject_id=row.subject_id,
        purpose=row.purpose,
        fields=row.fields.split(",") if row.fields else [],
        decision=row.decision,
        reason=row.reason,
        consent_id=row.consent_id,
        request_id=row.request_id,
        sealed=row.chain_pos is not None,
    )


# -- search -----------------------------------------------------------------------------------


async def search(
    ctx: VaultContext,
    actor: Actor,
    filters: AuditFilter,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> AuditPage:
    """One page of matching events, newest first, and the cursor of the next page (or None).

    Writes a `dpo:audit:search` event (with the filters, never contact data) in the same
    transaction, so the results are returned only once that event is committed.
    """
    f = validate_filter(filters)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("limit out of range", {"limit": f"must be 1 to {MAX_LIMIT}"})
    before = decode_cursor(cursor) if cursor is not None else None
    stmt = select_events_with_seals().where(*conditions(f))
    if before is not None:
        stmt = stmt.where(audit_events.c.seq < before)
    stmt = stmt.order_by(audit_events.c.seq.desc()).limit(limit + 1)
    async with ctx.transaction() as conn:
        rows = (await conn.execute(stmt)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        detail: dict[str, Any] = {"filters": f.as_detail(), "returned": len(rows)}
        if before is not None:
            detail["page_below_seq"] = before
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=AuditAction.DPO_AUDIT_SEARCH,
            decision=Decision.ALLOW,
            subject_id=f.subject_id,
            purpose=f.purpose,
            detail=detail,
        )
    items = [audit_item(r) for r in rows]
    next_cursor = encode_cursor(items[-1].seq) if more and items else None
    return AuditPage(items=items, next_cursor=next_cursor)


# -- time buckets -----------------------------------------------------------------------------


# -- access statistics ------------------------------------------------------------------------


# -- consent statistics -----------------------------------------------------------------------


# -- chain status -----------------------------------------------------------------------------
