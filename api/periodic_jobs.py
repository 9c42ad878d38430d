"""The periodic jobs of a Tresor process: the audit sealer, the monthly audit partitions
(PostgreSQL), the retention sweep with the audit trail's own pruning, recipient notices
and the mail outbox.

They run in the `tresor jobs` child process on PostgreSQL and inside `tresor serve` on SQLite
(`api.jobs_process`, `api.app`); each reports counts only (no ids, no data) to the log and
/metrics. Split from `api.app`, which builds the web application.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import asdict
from typing import Any

import structlog

from api import metrics
from api.background import PeriodicJob
from vault import mail_outbox
from vault.admin.housekeeping import purge_transient
from vault.audit import chain as audit_chain
from vault.audit import partitions
from vault.audit.archive_lock import ArchiveBusy
from vault.audit.events import SYSTEM
from vault.audit.prune import prune
from vault.context import VaultContext
from vault.recipients.delivery import Deliverer, RunReport, outbox_listener
from vault.rights import retention
from vault.rights.requests import settle_awaiting
from vault.storage.listen import ChannelListener


def sealer_round(ctx: VaultContext, *, measure_every: float = 5.0) -> Any:
    """One sealer round for the periodic job, reported to /metrics; the backlog is counted
    at most every `measure_every` seconds (one indexed count, no write lock). The sealer
    also checkpoints a head that stayed uncovered for `TRESOR_AUDIT_CHECKPOINT_SECONDS`."""
    next_count = 0.0
    sealer = audit_chain.Sealer(ctx)

    async def run() -> None:
        nonlocal next_count
        report = await sealer.round()
        unsealed = None
        if time.monotonic() >= next_count:
            next_count = time.monotonic() + measure_every
            unsealed = await audit_chain.unsealed_count(ctx)
        metrics.observe_seal(report.sealed, report.head_position >= 0, unsealed)

    return run


async def stop_jobs(ctx: VaultContext, jobs: list[PeriodicJob]) -> None:
    """Stop the periodic jobs after their current run, then seal everything appended so far
    (a clean shutdown, inline or in the jobs process, leaves nothing unsealed)."""
    for job in jobs:
        await job.stop()
    await audit_chain.seal_all(ctx, max_wait_seconds=12.0)


def background_jobs_for(ctx: VaultContext) -> list[PeriodicJob]:
    """The periodic jobs every `tresor serve` process runs."""
    jobs = [
        PeriodicJob("audit-sealer", ctx.settings.seal_interval, sealer_round(ctx)),
    ]
    if ctx.engine.dialect.name == "postgresql":
        # Monthly partitions of the audit trail (issue 19): the months ahead exist before
        # their first event; runs at start and hourly, race-safe across nodes.
        jobs.append(
            PeriodicJob(
                "audit-partitions", partitions.ENSURE_INTERVAL_SECONDS, lambda: _partitions(ctx)
            )
        )
    if ctx.settings.retention_interval > 0:
        jobs.append(
            PeriodicJob("retention", ctx.settings.retention_interval, lambda: _retention(ctx))
        )
    if ctx.settings.notify_interval > 0:
        # Recipient notices (issue 16): fan out new domain events and deliver what is due.
        # In the jobs process on PostgreSQL (claims by row locks, so several nodes share
        # the work), inside `serve` on SQLite; never on a request's path.
        deliverer = Deliverer(ctx, observer=metrics.NotificationMetrics())
        # On PostgreSQL a committed domain event wakes the job at once (LISTEN/NOTIFY);
        # the interval stays as the poll behind it (and is all SQLite has).
        wake = outbox_listener(ctx)

        async def notify() -> None:
            await wake.start()
            report = await deliverer.run()
            # Requests whose recipients have all confirmed close (Art. 19 GDPR).
            settled = await settle_awaiting(ctx)
            if report != RunReport() or settled:
                # Counts only: no ids, no URLs, no payloads.
                structlog.get_logger("tresor.notify").info(
                    "notify_run", **asdict(report), requests_settled=settled
                )

        jobs.append(
            PeriodicJob(
                "notify",
                ctx.settings.notify_interval,
                notify,
                close=lambda: _close_all(deliverer.close(), wake.close()),
                wake=wake.event,
            )
        )
    if ctx.settings.mail_interval > 0:
        jobs.append(mail_job(ctx))
    return jobs


def mail_job(ctx: VaultContext, *, measure_every: float = 5.0) -> PeriodicJob:
    """The mail outbox's sender (`vault.mail_outbox`): in the jobs process on PostgreSQL
    (claims by row locks, so several nodes share the queue; a queued mail's commit wakes it
    by NOTIFY), inside `serve` on SQLite. Its counts go to /metrics and the log."""
    sender = mail_outbox.MailSender(ctx)
    wake = ChannelListener(lambda: ctx.engine, mail_outbox.MAIL_CHANNEL)
    next_count = 0.0

    async def run() -> None:
        nonlocal next_count
        await wake.start()
        report = await sender.run()
        counts = None
        if time.monotonic() >= next_count:
            next_count = time.monotonic() + measure_every
            counts = await mail_outbox.counts(ctx)
        metrics.observe_mail(report.sent, report.retried, report.failed, counts)
        if report != mail_outbox.SendReport():
            structlog.get_logger("tresor.mail").info("mail_run", **asdict(report))

    return PeriodicJob("mail", ctx.settings.mail_interval, run, close=wake.close, wake=wake.event)


async def _close_all(*closing: Awaitable[object]) -> None:
    for close in closing:
        await close


async def _partitions(ctx: VaultContext) -> None:
    """Create the audit trail's missing monthly partitions; logs the months created."""
    created = await partitions.ensure_ahead(ctx, ctx.clock.now())
    if created:
        structlog.get_logger("tresor.audit").info(
            "audit_partitions_created", months=[m.isoformat() for m in created]
        )


async def _retention(ctx: VaultContext) -> None:
    """One retention sweep; its counts go to the log (no ids, no data)."""
    report = await retention.run_retention(ctx)
    purged = await purge_transient(ctx)
    # The audit trail's own retention: only months already archived are deleted. While an
    # operator's archive or prune (or another node's job) runs, this round leaves it out.
    try:
        audit_pruned: int | None = (
            await prune(ctx, ctx.controller.audit_retention_months, actor=SYSTEM)
        ).events
    except ArchiveBusy:
        audit_pruned = None
    structlog.get_logger("tresor.retention").info(
        "retention_run", **asdict(report), **asdict(purged), audit_events_pruned=audit_pruned
    )
