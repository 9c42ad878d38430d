"""Erasure, said once for one subject or many: every delete and update names the whole
batch of subject ids, so the retention sweep erases a batch with a fixed number of
statements instead of ~20 per subject, and `erase_in` (vault.rights.erasure) is this with
a batch of one.

Counts per subject come back with `RETURNING subject_id` or a `GROUP BY`, and the domain
events and audit events go in as one multi-row insert each. The caller holds every row of
the batch locked (`SELECT ... FOR UPDATE`) in its transaction, so a concurrent write to
one of them waits and then finds it erased, as with one erasure at a time; and everything
happens in that one transaction, so a failure anywhere (the audit insert included) erases
none of the batch (fail closed).

tests/vault/rights/test_erasure_batch_equivalence.py erases the same subjects one at a
time and as one batch and compares every table row for row.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.batch import record_of
from vault.audit.events import Actor, Decision, action_for
from vault.bases.ending import LIVE_STATUSES, end_live_bases
from vault.catalogue.purposes import CONTACT_FIELDS
from vault.errors import Conflict
from vault.outreach import bookings
from vault.outreach.followups import FollowupStatus
from vault.recipients import events as outbox
from vault.rights.erasure_keeps import ErasureResult, Keep, retain_fields
from vault.storage.outreach_tables import (
    contact_preference_history,
    contact_preferences,
    followups,
)
from vault.storage.rights_tables import (
    dsar_requests,
    identity_changes,
    retained_fields,
    self_service_challenges,
    web_sessions,
)
from vault.storage.sessions import Ended
from vault.storage.tables import consents, subjects
from vault.subjects.store import INDEXED, SubjectStatus

if TYPE_CHECKING:
    from vault.context import VaultContext

#: What a subject's erasure keeps: (legal-obligation purpose, retained until).


async def _count_by_subject(conn: AsyncConnection, stmt: Any) -> Counter[str]:
    """Run a DELETE ... RETURNING subject_id (or a SELECT of subject ids) and count."""
    return Counter(str(s) for s in (await conn.execute(stmt)).scalars())


async def erase_many_in(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    rows: Sequence[Row[Any]],
    now: datetime,
    keeps: Sequence[Keep],
) -> list[ErasureResult]:
    """Erase the (locked) subject rows inside the caller's transaction, each keeping what
    its `keeps` entry names: the effects of `erase_in(..., keep=keeps[i])` for each, in
    a fixed number of statements. The caller should call `ctx.deks.forget(id)` for each
    again after its commit."""
    if not rows:
        return []
    if any(row.status == SubjectStatus.ERASED for row in rows):
        raise Conflict("the subject was already erased")
    ids = [row.id for row in rows]
    retained: list[dict[str, Any]] = []
    results = [
        retain_fields(ctx, row, keep, now, retained) for row, keep in zip(rows, keeps, strict=True)
    ]
    if retained:
        await conn.execute(retained_fields.insert(), retained)
    # A live basis (none, when the sweep decided to erase: a writer of bases locks the
    # subject row first, which the caller holds) is ended one subject at a time, with its
    # history and events, exactly as `erase_in` does.
    live = (
        await conn.execute(
            select(consents.c.subject_id)
            .where(consents.c.subject_id.in_(ids))
            .where(consents.c.status.in_([str(s) for s in LIVE_STATUSES]))
            .with_for_update()
        )
    ).scalars()
    ended: Counter[str] = Counter()
    for subject_id in sorted(set(live)):
        bases = await end_live_bases(
            conn, actor=actor, subject_id=subject_id, now=now, event="erased"
        )
        ended[subject_id] = len(bases)
    await conn.execute(
        update(consents)
        .where(consents.c.subject_id.in_(ids))
        .values(
            evidence_ct=None,
            confirm_token_hash=None,
            reference=None,
            reference_ct=None,
            notice_version=None,
            notice_version_ct=None,
        )
    )
    await conn.execute(
        update(dsar_requests).where(dsar_requests.c.subject_id.in_(ids)).values(payload_ct=None)
    )
    digests = [d for row in rows for d in (row.email_bidx, row.phone_bidx) if d is not None]
    challenge_match: ColumnElement[bool] = self_service_challenges.c.subject_id.in_(ids)
    if digests:
        challenge_match = or_(
            challenge_match, self_service_challenges.c.identifier_digest.in_(digests)
        )
    await conn.execute(delete(self_service_challenges).where(challenge_match))
    await conn.execute(delete(identity_changes).where(identity_changes.c.subject_id.in_(ids)))
    await mail_outbox.forget_subjects(conn, ids)
    await conn.execute(
        update(web_sessions)
        .where(web_sessions.c.subject_id.in_(ids))
        .where(web_sessions.c.ended_at.is_(None))
        .values(ended_at=now, ended_why=Ended.ERASED.value)
    )
    history = contact_preference_history
    preference_history = await _count_by_subject(
        conn,
        delete(history).where(history.c.subject_id.in_(ids)).returning(history.c.subject_id),
    )
    preference_rows = await _count_by_subject(
        conn,
        delete(contact_preferences)
        .where(contact_preferences.c.subject_id.in_(ids))
        .returning(contact_preferences.c.subject_id),
    )
    open_followups = await _count_by_subject(
        conn,
        select(followups.c.subject_id)
        .where(followups.c.subject_id.in_(ids))
        .where(followups.c.status == FollowupStatus.OPEN.value)
        .where(followups.c.due_until > now),
    )
    deleted_followups = await _count_by_subject(
        conn,
        delete(followups).where(followups.c.subject_id.in_(ids)).returning(followups.c.subject_id),
    )
    released_holds = await bookings.forget_subjects(conn, ids, now)
    purposes: dict[str, set[str]] = defaultdict(set)
    for subject_id, purpose in await conn.execute(
        select(consents.c.subject_id, consents.c.purpose)
        .where(consents.c.subject_id.in_(ids))
        .distinct()
    ):
        purposes[subject_id].add(purpose)
    await outbox.emit_many(
        conn,
        outbox.EventType.SUBJECT_ERASED,
        [(subject_id, sorted(purposes[subject_id])) for subject_id in ids],
        at=now,
    )
    shredded: dict[str, Any] = {f"{f}_ct": None for f in CONTACT_FIELDS}
    shredded.update({column: None for column in INDEXED.values()})
    await conn.execute(
        update(subjects)
        .where(subjects.c.id.in_(ids))
        .values(
            status=SubjectStatus.ERASED,
            wrapped_dek=None,
            kek_version=None,
            erased_at=now,
            updated_at=now,
            retention_check_at=None,
            **shredded,
        )
    )
    events = []
    for row, (kept, until) in zip(rows, results, strict=True):
        sid = row.id
        events.append(
            record_of(
                audit.event_row(
                    at=now,
                    actor=actor,
                    action=action_for(actor, "subject:erase"),
                    decision=Decision.ALLOW,
                    subject_id=sid,
                    fields=[f for f in CONTACT_FIELDS if getattr(row, f"{f}_ct") is not None],
                    reason="art_17_3_b" if kept else None,
                    detail={
                        "ended_bases": ended[sid],
                        "kept_purposes": kept,
                        "retained_until": until.isoformat() if until else None,
                        "preferences_deleted": bool(preference_rows[sid]),
                        "preference_history_deleted": preference_history[sid],
                        "followups_deleted": deleted_followups[sid],
                        "open_followups_cancelled": open_followups[sid],
                        "campaign_holds_released": released_holds[sid],
                    },
                )
            )
        )
    await audit.record_records(conn, events)
    for sid in ids:
        ctx.deks.forget(sid)
    return [ErasureResult(kept_purposes=kept, retained_until=until) for kept, until in results]
