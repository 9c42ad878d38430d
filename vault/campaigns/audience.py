"""A campaign's audience: uploaded subject ids or external references, or everyone with
a basis for the purpose.

An upload is NDJSON (one object per line with `subject_id` or `external_ref`) or CSV (a
header naming `subject_id` or `external_ref`, one value per row). External references are
matched through their blind index, never stored or echoed; only subject ids of known,
active subjects become members, and only counts come back. The basis audience is resolved
set-based in the database when the campaign is booked (`basis_members`).

`near_audience` is the query-set-overlap control of the forecasts (issue 21, item 5): two
audiences that differ by 1 to k - 1 members would let a marketer subtract two forecasts
and learn those members' status, so such a campaign's forecast is hidden.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.campaigns.records import AudienceKind, CampaignState, CampaignStateConflict, load
from vault.catalogue.purposes import CommunicationType
from vault.errors import InvalidInput
from vault.storage.campaign_tables import campaign_audience, campaigns
from vault.storage.rows import canonical_id
from vault.storage.tables import consents, subjects
from vault.subjects.contact import ContactValidationError, normalise_external_ref
from vault.subjects.decision import BasisStatus

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Largest upload accepted in one request (lines or rows).
MAX_MEMBERS = 1_000_000
_KINDS = ("subject_id", "external_ref")


@dataclass(frozen=True, slots=True)
class AudienceResult:
    """Counts of an upload: lines read, members stored, values no subject matched."""

    lines: int
    members: int
    unmatched: int


def parse_upload(text: str, fmt: str) -> list[tuple[str, str]]:
    """(kind, value) pairs of an NDJSON or CSV upload; raises `InvalidInput` naming the
    first bad line (by number, never by content)."""
    pairs: list[tuple[str, str]] = []
    if fmt == "ndjson":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise InvalidInput("bad upload", {"file": f"line {n} is not JSON"}) from None
            keys = [k for k in _KINDS if isinstance(item, dict) and k in item]
            if len(keys) != 1 or not isinstance(item[keys[0]], str) or len(item) != 1:
                raise InvalidInput(
                    "bad upload",
                    {"file": f"line {n} needs exactly one of subject_id, external_ref"},
                )
            pairs.append((keys[0], item[keys[0]]))
    elif fmt == "csv":
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or len(header) != 1 or header[0].strip() not in _KINDS:
            raise InvalidInput("bad upload", {"file": "header must be subject_id or external_ref"})
        kind = header[0].strip()
        for n, row in enumerate(reader, start=2):
            if not row or not row[0].strip():
                continue
            if len(row) != 1:
                raise InvalidInput("bad upload", {"file": f"row {n} must have one column"})
            pairs.append((kind, row[0].strip()))
    else:
        raise InvalidInput("bad upload", {"format": "must be ndjson or csv"})
    if len(pairs) > MAX_MEMBERS:
        raise InvalidInput("upload too large", {"file": f"at most {MAX_MEMBERS} members"})
    return pairs


async def set_audience(
    ctx: VaultContext, actor: Actor, campaign_id: str, pairs: list[tuple[str, str]]
) -> AudienceResult:
    """Replace a draft campaign's list audience with the uploaded members; audited with
    counts only. Raises `CampaignStateConflict` unless the campaign is a list draft."""
    ids: set[str] = set()
    digests: set[str] = set()
    for kind, value in pairs:
        if kind == "subject_id":
            canonical = canonical_id(value)
            if canonical is not None:
                ids.add(canonical)
        else:
            try:
                digests.add(ctx.indexer.digest("external_ref", normalise_external_ref(value)))
            except ContactValidationError:
                continue
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        camp = await load(conn, campaign_id, lock=True)
        if camp.state != CampaignState.DRAFT or camp.audience_kind != AudienceKind.LIST:
            raise CampaignStateConflict("only a draft campaign's list audience can change")
        found: set[str] = set()
        active = subjects.c.status != "erased"
        for chunk in _chunks(sorted(ids)):
            rows = await conn.execute(select(subjects.c.id).where(subjects.c.id.in_(chunk), active))
            found.update(r.id for r in rows)
        for chunk in _chunks(sorted(digests)):
            rows = await conn.execute(
                select(subjects.c.id).where(subjects.c.external_ref_bidx.in_(chunk), active)
            )
            found.update(r.id for r in rows)
        await conn.execute(
            delete(campaign_audience).where(campaign_audience.c.campaign_id == campaign_id)
        )
        members = sorted(found)
        for chunk in _chunks(members, 5000):
            await conn.execute(
                insert(campaign_audience),
                [{"campaign_id": campaign_id, "subject_id": s} for s in chunk],
            )
        await conn.execute(
            campaigns.update().where(campaigns.c.id == campaign_id).values(updated_at=now)
        )
        result = AudienceResult(len(pairs), len(members), len(pairs) - len(members))
        await audit.record(
            conn, at=now, actor=actor, action=AuditAction.CAMPAIGN_AUDIENCE,
            decision=Decision.ALLOW, purpose=camp.purpose,
            detail={"campaign": {"id": campaign_id, "lines": result.lines,
                                 "members": result.members}},
        )  # fmt: skip
    return result


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def has_basis(subject_col: Any, purpose: str, type: str, now: datetime) -> Any:
    """SQL condition: the subject has a live basis for `purpose` (granted or active, not
    expired), is not erased or restricted, and for a marketing type has not objected.
    The lookup's `judge_subject` decides each contact; this is the planning estimate."""
    live = exists().where(
        consents.c.subject_id == subject_col,
        consents.c.purpose == purpose,
        consents.c.status.in_((BasisStatus.GRANTED.value, BasisStatus.ACTIVE.value)),
        or_(consents.c.expires_at.is_(None), consents.c.expires_at > now),
    )
    marketing = type in (CommunicationType.COMMERCIAL.value, CommunicationType.EDITORIAL.value)
    person = exists().where(
        subjects.c.id == subject_col,
        subjects.c.status == "active",
        subjects.c.marketing_objection_at.is_(None) if marketing else true(),
    )
    return and_(live, person)


def basis_members(
    campaign_id: str,
    purpose: str,
    type: str,
    now: datetime,
    key: Callable[[Any], Any] = lambda column: column,
) -> Any:
    """SELECT of (campaign_id, subject_id) for everyone with a basis for the purpose: the
    condition of `has_basis`, read in one pass over the purpose's live consents.

    `key` is applied to the subject id that is de-duplicated and sorted: the caller passes
    `booking_scratch.byte_order` so PostgreSQL sorts a million ids by their bytes instead
    of calling the C library's collation per comparison (the database's "C.UTF-8" is not
    PostgreSQL's own "C"); ids are ASCII, so the order and the groups are the same."""
    marketing = type in (CommunicationType.COMMERCIAL.value, CommunicationType.EDITORIAL.value)
    person = exists().where(
        subjects.c.id == consents.c.subject_id,
        subjects.c.status == "active",
        subjects.c.marketing_objection_at.is_(None) if marketing else true(),
    )
    subject = key(consents.c.subject_id)
    return (
        select(literal(campaign_id), subject)
        .where(
            consents.c.purpose == purpose,
            consents.c.status.in_((BasisStatus.GRANTED.value, BasisStatus.ACTIVE.value)),
            or_(consents.c.expires_at.is_(None), consents.c.expires_at > now),
            person,
        )
        .distinct()
        # In primary-key order: the audience's index grows in order, not at random.
        .order_by(subject)
    )


async def near_audience(conn: AsyncConnection, campaign_id: str, k: int) -> bool:
    """Whether the campaign's stored audience differs from another campaign's stored
    audience (any state: a cancelled or sent campaign's forecast was readable too) by 1 to
    k - 1 members. |A delta B| >= ||A| - |B||, so only audiences whose sizes differ by
    less than k are compared, each by one merge of the two primary-key ranges; the sizes
    come from one grouped index scan. For a basis draft the caller resolves its audience
    first (the forecast does, in a savepoint)."""
    a = campaign_audience.c
    mine = (
        await conn.execute(select(func.count()).where(a.campaign_id == campaign_id))
    ).scalar_one()
    size = func.count()
    near_sizes = await conn.execute(
        select(a.campaign_id, size)
        .where(a.campaign_id != campaign_id)
        .group_by(a.campaign_id)
        .having(size > mine - k, size < mine + k)
    )
    other = campaign_audience.alias("other")
    for other_id, other_size in near_sizes.all():
        shared = (
            await conn.execute(
                select(func.count())
                .select_from(
                    campaign_audience.join(
                        other,
                        and_(other.c.subject_id == a.subject_id, other.c.campaign_id == other_id),
                    )
                )
                .where(a.campaign_id == campaign_id)
            )
        ).scalar_one()
        if 0 < mine + other_size - 2 * shared < k:
            return True
    return False
