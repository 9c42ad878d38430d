"""The retention sweeper: `tresor retention run`, and periodically inside `tresor serve`.

One run, against the injected clock:

1. consents and other bases past `expires_at` are stored as `expired`;
2. double opt-ins still pending past `confirm_deadline` are stored as `lapsed` (their
   confirmation link dies with them);
3. subjects whose every basis has ended longer ago than its purpose's
   `retention_after_end` are erased by crypto-shredding (`vault.rights.erasure`). Only
   subjects stamped due by `subjects.retention_check_at` are looked at
   (`vault.subjects.retention_schedule`), so a run costs O(subjects due), not O(subjects). A
   legal-obligation basis whose retention still runs does not hold the rest back: its
   fields move to `retained_fields` until *end of that basis + its retention*, and
   everything else goes now (data minimisation);
4. retained fields past `retain_until` are shredded (key and ciphertext deleted);
5. agreed follow-ups whose window passed unused are stored as `missed`
   (vault.outreach.followup_changes);
6. mails of the file outbox (development only) older than `TRESOR_OUTBOX_HOURS` are
   deleted: they hold addresses, codes and links in plaintext;
7. rows written before migration 0013 are brought up to date, which needs the keyring and
   so cannot happen in the migration: a basis's plaintext reference and notice version are
   sealed under the subject's key, and contact fields sealed without a revision are
   re-sealed at revision 1 (`vault.subjects.revision_upgrade`).

Each change writes history and an audit event in the transaction that makes it, and every
update is guarded by the state it read, so concurrent runs on several `serve` processes
sharing one PostgreSQL never double-write. Work goes in batches of `BATCH` rows, each
batch its own short transaction: the subjects due are erased a batch at a time with a
fixed number of statements (`vault.rights.erasure_batch`), only the subjects of the batch
being decided are locked, and lookups (plain reads) never wait for the sweep.

Deliberately left alone (and counted in the report):

* subjects with no basis at all: there is no purpose whose end starts a retention period
  (e.g. a subject stored a moment before its first consent is recorded); a DPO decides.
  Each is counted by the first run after it was stored (or after migration 0027);
* restricted subjects (Art. 18: the subject may need the data kept, e.g. for legal claims);
* subjects with an open data-subject request (it must be answered first);
* subjects with a basis whose purpose is no longer in the catalogue (its retention is
  unknown, and erasure cannot be undone).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, insert, or_, select, update

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.events import SYSTEM, Actor, AuditAction, Decision
from vault.bases.consents import seal_legacy_texts
from vault.catalogue.purposes import Purpose
from vault.clock import as_utc
from vault.crypto import retained_key_id
from vault.mail import FileOutbox
from vault.outreach import followup_changes
from vault.progress import NO_PROGRESS, Progress
from vault.recipients import events as outbox
from vault.rights import selfservice
from vault.rights.erasure_batch import erase_many_in
from vault.rights.requests import OPEN
from vault.rights.retention_plan import BATCH, ERASE_BATCH, erasure_plan, next_check
from vault.sms import FileSmsOutbox
from vault.storage.rights_tables import dsar_requests, retained_fields
from vault.storage.tables import consent_history, consents, subjects
from vault.subjects import retention_schedule
from vault.subjects.decision import BasisStatus
from vault.subjects.revision_upgrade import upgrade_legacy_revisions
from vault.subjects.store import SubjectStatus

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class RetentionReport:
    expired: int = 0
    lapsed: int = 0
    erased: int = 0
    #: of the erased subjects, how many kept legal-obligation fields apart
    erased_with_retained: int = 0
    shredded: int = 0
    #: due for erasure but left alone: restricted, open request, or unknown purpose
    skipped: int = 0
    #: active subjects found without any basis (never erased by the sweeper); each is
    #: counted by the first run after it was stored
    without_basis: int = 0
    #: spent self-service codes and ended sessions deleted (data minimisation)
    purged_sign_ins: int = 0
    #: agreed follow-ups whose window passed unused, now stored as missed
    missed_followups: int = 0
    #: mails deleted from the file outbox (older than TRESOR_OUTBOX_HOURS)
    pruned_mails: int = 0
    #: rows from before migration 0013 brought up to date: bases whose free text was
    #: sealed, subjects whose contact fields were re-sealed with a revision
    upgraded_rows: int = 0


async def _end_by_time(
    ctx: VaultContext,
    actor: Actor,
    now: datetime,
    *,
    from_status: list[str],
    time_column: Any,
    to_status: BasisStatus,
    action: AuditAction,
    batch: int,
) -> int:
    total = 0
    while True:
        async with ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(
                        consents.c.id,
                        consents.c.subject_id,
                        consents.c.purpose,
                        consents.c.status,
                        consents.c.expires_at,
                    )
                    .where(consents.c.status.in_(from_status))
                    .where(time_column.is_not(None))
                    .where(time_column <= now)
                    .order_by(consents.c.id)
                    .limit(batch)
                )
            ).all()
            for r in rows:
                result = await conn.execute(
                    update(consents)
                    .where(consents.c.id == r.id)
                    .where(consents.c.status == r.status)
                    .values(status=str(to_status), confirm_token_hash=None)
                )
                if result.rowcount != 1:
                    continue
                await retention_schedule.check_at(conn, r.subject_id, now)
                if to_status is BasisStatus.EXPIRED:
                    await outbox.emit(
                        conn,
                        outbox.EventType.CONSENT_EXPIRED,
                        subject_id=r.subject_id,
                        purposes=[r.purpose],
                        at=now,
                    )
                await conn.execute(
                    insert(consent_history).values(
                        consent_id=r.id,
                        subject_id=r.subject_id,
                        at=now,
                        event=str(to_status),
                        status=str(to_status),
                        actor=actor.label,
                        expires_at=r.expires_at,
                    )
                )
                await audit.record(
                    conn,
                    at=now,
                    actor=actor,
                    action=action,
                    decision=Decision.ALLOW,
                    subject_id=r.subject_id,
                    purpose=r.purpose,
                    consent_id=r.id,
                )
                total += 1
        if len(rows) < batch:
            return total


@dataclass(slots=True)
class _Erasures:
    erased: int = 0
    with_retained: int = 0
    skipped: int = 0
    without_basis: int = 0


async def _erase_due(ctx: VaultContext, actor: Actor, now: datetime, batch: int) -> _Erasures:
    """Erase the subjects stamped due by `now` whose retention has run out; re-stamp the
    others with when to look again (see `vault.subjects.retention_schedule`)."""
    out = _Erasures()
    stamp = subjects.c.retention_check_at
    listed = stamp <= now
    while True:
        async with ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(subjects.c.id, stamp)
                    .where(listed)
                    .order_by(stamp, subjects.c.id)
                    .limit(batch)
                )
            ).all()
        for start in range(0, len(rows), ERASE_BATCH):
            ids = [r.id for r in rows[start : start + ERASE_BATCH]]
            for subject_id in await _erase_batch(ctx, actor, now, ids, out):
                ctx.deks.forget(subject_id)
        if len(rows) < batch:
            return out
        # Keyset on (stamp, id): the subjects left stamped (skipped) stay behind it.
        last = rows[-1]
        after = or_(
            stamp > last.retention_check_at,
            and_(stamp == last.retention_check_at, subjects.c.id > last.id),
        )
        listed = and_(stamp <= now, after)


async def _erase_batch(
    ctx: VaultContext, actor: Actor, now: datetime, ids: list[str], out: _Erasures
) -> list[str]:
    """Decide a batch of stamped subjects in one transaction of its own, erasing those due
    with a fixed number of statements (`erase_many_in`); returns the ids erased.

    A subject locked by someone else is passed over (`SKIP LOCKED`, PostgreSQL), not waited
    for: concurrent sweeps (every `serve` process runs one, each at its start) list the same
    subjects in the same order, and waiting made them queue behind each other subject by
    subject, one erasing and the others only finding it done. It stays stamped, so the
    sweep holding it, or the next one, decides it. The rows taken stay locked until the
    batch commits: a write to one of them waits and then finds it erased (or re-stamped),
    as with one erasure at a time; lookups (plain reads) never wait."""
    async with ctx.transaction() as conn:
        locked = {
            row.id: row
            for row in await conn.execute(
                select(subjects).where(subjects.c.id.in_(ids)).with_for_update(skip_locked=True)
            )
        }
        # Listing order; gone, locked elsewhere, re-stamped or erased since listed: passed.
        rows = [
            locked[i]
            for i in ids
            if i in locked
            and locked[i].retention_check_at is not None
            and as_utc(locked[i].retention_check_at) <= now
        ]
        restamp: list[dict[str, Any]] = []
        alive = (SubjectStatus.ACTIVE, SubjectStatus.RESTRICTED)
        live = [r for r in rows if r.status in alive]
        restamp += [{"b_id": r.id, "b_at": None} for r in rows if r.status not in alive]
        bases: dict[str, list[Any]] = defaultdict(list)
        if live:
            for basis in await conn.execute(
                select(consents).where(consents.c.subject_id.in_([r.id for r in live]))
            ):
                bases[basis.subject_id].append(basis)
        due: list[tuple[Any, list[tuple[Purpose, datetime]]]] = []
        for row in live:
            verdict, keep = erasure_plan(ctx, bases[row.id], now)
            if verdict == "unknown_purpose":
                out.skipped += 1  # stays stamped: looked at again by every run, and counted
            elif verdict == "no_basis":
                out.without_basis += 1 if row.status == SubjectStatus.ACTIVE else 0
                restamp.append({"b_id": row.id, "b_at": None})
            elif verdict != "erase":
                restamp.append({"b_id": row.id, "b_at": next_check(ctx, bases[row.id], now)})
            elif row.status == SubjectStatus.RESTRICTED:
                out.skipped += 1
            else:
                due.append((row, keep))
        if due:
            asked = set(
                (
                    await conn.execute(
                        select(dsar_requests.c.subject_id)
                        .where(dsar_requests.c.subject_id.in_([r.id for r, _ in due]))
                        .where(dsar_requests.c.status.in_([s.value for s in OPEN]))
                    )
                ).scalars()
            )
            out.skipped += sum(1 for r, _ in due if r.id in asked)
            due = [(r, keep) for r, keep in due if r.id not in asked]
        if restamp:
            await conn.execute(
                update(subjects)
                .where(subjects.c.id == bindparam("b_id"))
                .values(retention_check_at=bindparam("b_at")),
                restamp,
            )
        results = await erase_many_in(
            ctx, conn, actor, [r for r, _ in due], now, [keep for _, keep in due]
        )
    out.erased += len(results)
    out.with_retained += sum(1 for result in results if result.kept_purposes)
    return [r.id for r, _ in due]


async def _shred_retained(ctx: VaultContext, actor: Actor, now: datetime, batch: int) -> int:
    total = 0
    while True:
        async with ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(
                        retained_fields.c.id,
                        retained_fields.c.subject_id,
                        retained_fields.c.purpose,
                    )
                    .where(retained_fields.c.shredded_at.is_(None))
                    .where(retained_fields.c.retain_until <= now)
                    .order_by(retained_fields.c.id)
                    .limit(batch)
                )
            ).all()
            for r in rows:
                result = await conn.execute(
                    update(retained_fields)
                    .where(retained_fields.c.id == r.id)
                    .where(retained_fields.c.shredded_at.is_(None))
                    .values(wrapped_key=None, fields_ct=None, kek_version=None, shredded_at=now)
                )
                if result.rowcount != 1:
                    continue
                await audit.record(
                    conn,
                    at=now,
                    actor=actor,
                    action=AuditAction.SYSTEM_RETAINED_SHRED,
                    decision=Decision.ALLOW,
                    subject_id=r.subject_id,
                    purpose=r.purpose,
                    detail={"retained_id": r.id},
                )
                total += 1
        for r in rows:
            ctx.deks.forget(retained_key_id(r.id))
        if len(rows) < batch:
            return total


async def run_retention(
    ctx: VaultContext,
    actor: Actor = SYSTEM,
    *,
    batch: int = BATCH,
    progress: Progress = NO_PROGRESS,
) -> RetentionReport:
    """One sweep (see the module docstring); returns what it did. `progress` hears of
    each phase and of the rows it changed (the sweep commits per batch or subject, so an
    interrupted sweep is simply run again)."""
    now = ctx.clock.now()
    progress.begin("expire bases", None)
    expired = await _end_by_time(
        ctx,
        actor,
        now,
        from_status=[BasisStatus.GRANTED, BasisStatus.ACTIVE],
        time_column=consents.c.expires_at,
        to_status=BasisStatus.EXPIRED,
        action=AuditAction.SYSTEM_CONSENT_EXPIRE,
        batch=batch,
    )
    progress.advance(expired)
    progress.begin("lapse double opt-ins", None)
    lapsed = await _end_by_time(
        ctx,
        actor,
        now,
        from_status=[BasisStatus.PENDING_CONFIRMATION],
        time_column=consents.c.confirm_deadline,
        to_status=BasisStatus.LAPSED,
        action=AuditAction.SYSTEM_CONSENT_LAPSE,
        batch=batch,
    )
    progress.advance(lapsed)
    progress.begin("erase due subjects", None)
    erasures = await _erase_due(ctx, actor, now, batch)
    progress.advance(erasures.erased)
    progress.begin("shred retained fields", None)
    shredded = await _shred_retained(ctx, actor, now, batch)
    progress.advance(shredded)
    purged_codes, purged_sessions = await selfservice.purge_expired(ctx)
    missed_followups = await followup_changes.mark_missed(ctx, actor, batch=batch)
    pruned_mails = 0
    if isinstance(ctx.mailer, FileOutbox) and ctx.settings.outbox_hours > 0:
        pruned_mails = await ctx.mailer.prune(timedelta(hours=ctx.settings.outbox_hours))
    # The mail outbox's rows of mails sent or given up (no address left in them: counts
    # and times only) are kept 30 days for the DPO's counts, then deleted.
    pruned_mails += await mail_outbox.prune(ctx, now - mail_outbox.KEEP_DONE)
    if isinstance(ctx.sms, FileSmsOutbox) and ctx.settings.outbox_hours > 0:
        # Its files hold numbers and codes in plaintext, like the mail outbox's.
        await ctx.sms.prune(timedelta(hours=ctx.settings.outbox_hours))
    upgraded = await seal_legacy_texts(ctx, batch=batch)
    upgraded += await upgrade_legacy_revisions(ctx, batch=batch)
    return RetentionReport(
        expired=expired,
        lapsed=lapsed,
        erased=erasures.erased,
        erased_with_retained=erasures.with_retained,
        shredded=shredded,
        skipped=erasures.skipped,
        without_basis=erasures.without_basis,
        purged_sign_ins=purged_codes + purged_sessions,
        missed_followups=missed_followups,
        pruned_mails=pruned_mails,
        upgraded_rows=upgraded,
    )
