"""The audience dry run: how many of these subjects could be reached now, and why not.

`dry_run` answers "how many of these subjects could be reached now for this purpose, and why
not the others", from the access pipeline's read and decision (`vault.access.judge`),
without selecting or decrypting any ciphertext, for groups only (a minimum audience, small
buckets suppressed); it is audited as one event with the counts and one event per subject
concerned.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from vault.access.bulk import CHUNK, validate
from vault.access.events import contact_detail
from vault.access.judge import DUPLICATE_IDENTIFIER, decide_keys
from vault.access.lookup import LookupDenied, deny_message
from vault.access.pipeline import batch_keys
from vault.access.statements import CHANNEL_FIELD, subject_read
from vault.audit import events as audit
from vault.audit.batch import record_of
from vault.audit.events import Actor, AuditAction, Decision
from vault.catalogue.purposes import Purpose
from vault.errors import InvalidInput, InvariantViolation
from vault.storage.ports import TransactionReads
from vault.subjects.decision import Deny, DenyReason, check_contact, check_request
from vault.subjects.outbound import OutboundContact

if TYPE_CHECKING:
    from vault.context import VaultContext

NO_CONTACT_DATA = "no_contact_data"


@dataclass(frozen=True, slots=True)
class DryRunResult:
    """A dry run's answer, for groups only: a bucket (the reachable ones, or one reason)
    with fewer members than `min_audience` is left out and its members are counted in
    `suppressed` (`reachable` is None then)."""

    total: int
    reachable: int | None
    unreachable: dict[str, int]
    suppressed: int
    min_audience: int


@dataclass(slots=True)
class _Tally:
    """A dry run's raw outcome: per identifier (`counts` by reason, `reachable`) and per
    subject an identifier matched (its outcome, None = reachable; the first one counts)."""

    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    reachable: int = 0
    subjects: dict[str, str | None] = dataclasses.field(default_factory=dict)


async def dry_run(
    ctx: VaultContext,
    actor: Actor,
    client_purposes: frozenset[str],
    *,
    purpose_id: str,
    identifier_kind: str,
    identifiers: Sequence[str],
    channel: str | None = None,
    contact: OutboundContact | None = None,
) -> DryRunResult:
    """Count who could be reached now for the purpose (and over `channel`), by reason, for
    an audience, never for one person.

    Same decision as the batch; a subject allowed but without the contact field the channel
    needs counts as `no_contact_data`. With `contact`, the reachable ones are also put
    through the contact's reservation (basket, calamity cool-down, the customer's own rules)
    in a savepoint that is always rolled back, so the counts include those denials and
    nothing is reserved. No ciphertext is selected, nothing is decrypted.

    Why group answers only (security finding 3): the counts of a one-person audience are
    that person's status. So the audience must hold `dry_run_min_audience`
    (policies/contact-pressure.toml) distinct known subjects, else `LookupDenied`
    `audience_too_small`; counted by subject, so padding with unknown, malformed or repeated
    identifiers does not help. A bucket smaller than that is not shown (`DryRunResult`), so
    a real audience plus one address of interest does not name that person's reason. What
    suppression cannot stop (a caller who knows every other member's status learns by
    difference whether one more is reachable) is why every subject concerned gets an audit
    event of its own: its id, the purpose and its outcome, never the identifier. The
    reads, the rehearsal and all events are one transaction: the answer leaves only once
    the events committed.
    """
    validate(identifier_kind, identifiers, None)
    purpose = ctx.catalogue.get(purpose_id)
    if contact is not None:
        if channel is not None and contact.channel is None:
            contact = dataclasses.replace(contact, channel=channel)
        contact = contact.resolve(ctx, purpose)  # raises InvalidInput
        if channel is not None and contact.channel != channel:
            raise InvalidInput(
                "channel and contact disagree", {"contact.channel": f"must be {channel}"}
            )
        channel = contact.channel
    if channel is not None and purpose is not None and channel not in _channels(purpose):
        raise InvalidInput(
            "channel does not match the purpose",
            {
                "channel": f"the purpose {purpose_id} contacts over "
                + " or ".join(sorted(_channels(purpose)))
            },
        )
    checked = check_request(purpose, purpose_id, client_purposes, None)
    if contact is not None:
        checked = contact.check_grant(ctx, actor.id, client_purposes, checked)
        checked = check_contact(purpose, contact.brand, checked, reveals=False)
    now = ctx.clock.now()
    label = purpose_id if purpose is not None else "<unknown>"
    if isinstance(checked, Deny):
        async with ctx.transaction() as conn:
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.AUDIENCE_DRY_RUN,
                decision=Decision.DENY,
                purpose=label,
                reason=checked.reason,
                detail={"by": identifier_kind, "total": len(identifiers)},
            )
        raise LookupDenied(checked.reason, deny_message(checked.reason))
    if purpose is None:
        raise InvariantViolation("purpose is unset")
    channel = channel or _channels(purpose)[0]
    k = ctx.pressure_rules.dry_run_min_audience
    detail: dict[str, object] = {"by": identifier_kind, "channel": channel}
    if contact is not None:
        detail["contact"] = contact_detail(contact, None)
    async with ctx.transaction() as conn:
        tally = await _tally(
            conn, ctx, actor, purpose, checked, identifier_kind, identifiers, channel, contact,
            now,
        )  # fmt: skip
        too_small = len(tally.subjects) < k
        await audit.record_records(
            conn,
            [
                record_of(row)
                for row in _dry_run_events(
                    actor, purpose_id, detail, tally, len(identifiers), k, now
                )
            ],
        )
    if too_small:
        raise LookupDenied(
            DenyReason.AUDIENCE_TOO_SMALL,
            f"a dry run answers only for at least {k} distinct known subjects and this "
            "audience has fewer; nothing about its members is answered",
        )
    return _group_answer(len(identifiers), tally, k)


async def _tally(
    conn: AsyncConnection,
    ctx: VaultContext,
    actor: Actor,
    purpose: Purpose,
    fields: tuple[str, ...],
    kind: str,
    identifiers: Sequence[str],
    channel: str,
    contact: OutboundContact | None,
    now: datetime,
) -> _Tally:
    """Decide every identifier from the chunk reads (no ciphertext); with `contact`,
    rehearse each reachable subject's reservation in a savepoint that is rolled back."""
    tally = _Tally()
    reachable: list[str] = []
    matched: set[str] = set()
    spec = ctx.pressure_rules.channels.get(channel)
    # The fields a contact on the channel needs (none for social media: all are reachable).
    need = [f"has_{f}" for f in (spec.reveals if spec is not None else (CHANNEL_FIELD[channel],))]
    reads = TransactionReads(conn)
    statement = subject_read(kind, None, array=reads.arrays)
    for start in range(0, len(identifiers), CHUNK):
        keys = batch_keys(ctx, kind, identifiers[start : start + CHUNK])
        wanted = list({k for k in keys if k is not None})
        rows = (
            await reads.rows(statement, {"purpose": purpose.id, "keys": wanted}) if wanted else []
        )
        matched.update(r["id"] for r in rows)
        brand = contact.brand if contact is not None else None
        for o in decide_keys(rows, purpose, fields, keys, now, brand=brand):
            if o.allow is None:
                tally.counts[str(o.reason)] += 1
                if o.row is not None:
                    tally.subjects.setdefault(o.row["id"], str(o.reason))
            elif not all(o.row[n] for n in need):
                tally.counts[NO_CONTACT_DATA] += 1
                tally.subjects.setdefault(o.row["id"], NO_CONTACT_DATA)
            else:
                reachable.append(o.row["id"])
                tally.subjects.setdefault(o.row["id"], None)
    for subject_id in sorted(matched - tally.subjects.keys()):  # matched only ambiguously
        tally.subjects[subject_id] = str(DenyReason.AMBIGUOUS_IDENTIFIER)
    if contact is None:
        tally.reachable = len(reachable)
        return tally
    if contact.type is None:
        raise InvariantViolation("contact.type is unset")
    rehearsal = await conn.begin_nested()
    try:
        seen: set[str] = set()
        for subject_id in sorted(reachable):
            if subject_id in seen:
                tally.counts[DUPLICATE_IDENTIFIER] += 1
                continue
            seen.add(subject_id)
            got = await contact.reserve(  # its channel is `channel` (resolved above)
                conn,
                ctx,
                subject_id=subject_id,
                purpose_id=purpose.id,
                actor=actor,
                now=now,
                with_followup=False,
            )
            if isinstance(got, Deny):
                tally.counts[str(got.reason)] += 1
                tally.subjects[subject_id] = str(got.reason)
    finally:
        await rehearsal.rollback()  # what the batch would meet; nothing is kept
    tally.reachable = len(identifiers) - sum(tally.counts.values())
    return tally


def _dry_run_events(
    actor: Actor,
    purpose_id: str,
    detail: dict[str, object],
    tally: _Tally,
    total: int,
    k: int,
    now: datetime,
) -> list[dict[str, object]]:
    """The summary event (raw counts, for the DPO) and one event per subject concerned
    (its outcome; `audience_too_small` for all when the run is refused). Ids only."""
    too_small = len(tally.subjects) < k
    refused = str(DenyReason.AUDIENCE_TOO_SMALL) if too_small else None
    summary = {
        **detail,
        "total": total,
        "subjects": len(tally.subjects),
        "reachable": tally.reachable,
        "unreachable": dict(sorted(tally.counts.items())),
        "min_audience": k,
    }
    events = [
        audit.event_row(
            at=now,
            actor=actor,
            action=AuditAction.AUDIENCE_DRY_RUN,
            decision=Decision.DENY if too_small else Decision.ALLOW,
            purpose=purpose_id,
            reason=refused,
            detail=summary,
        )
    ]
    shared = json.dumps(detail, sort_keys=True)
    for subject_id, reason in tally.subjects.items():
        outcome = refused or reason
        events.append(
            audit.event_row(
                at=now,
                actor=actor,
                action=AuditAction.AUDIENCE_DRY_RUN,
                decision=Decision.DENY if outcome else Decision.ALLOW,
                subject_id=subject_id,
                purpose=purpose_id,
                reason=outcome,
                detail=shared,
            )
        )
    return events


def _group_answer(total: int, tally: _Tally, k: int) -> DryRunResult:
    """Only buckets of at least `k` members; the others are counted in `suppressed`."""
    shown = {reason: n for reason, n in sorted(tally.counts.items()) if n >= k}
    reachable = tally.reachable if tally.reachable >= k else None
    suppressed = total - sum(shown.values()) - (reachable or 0)
    return DryRunResult(total, reachable, shown, suppressed, k)


def _channels(purpose: Purpose) -> list[str]:
    """The channels a purpose may contact over (its first is the default)."""
    many = getattr(purpose, "channels", None)
    if many:
        return list(many)
    return [purpose.channel]
