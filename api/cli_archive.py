"""`tresor audit archive`, `tresor audit prune` and `tresor audit verify --archive`.

Bad input (a month that is no month, a destination that cannot be reached) is one
`error:` line and exit status 2, checked before anything is written or deleted. Archive
and prune run one at a time (`vault.audit.archive_lock`): a run that finds another one
going waits `--wait` seconds (default 0) for it, then exits with `BUSY` (75, sysexits'
`EX_TEMPFAIL`: nothing was done, try again later) and one `error:` line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from api.cli_support import UsageError, admin_actor, nice_flag, run_with_vault, yield_cpu
from api.progress import CliProgress
from vault.audit.archive_lock import ArchiveBusy
from vault.context import VaultContext
from vault.settings import Settings

#: Exit status when another archive or prune holds the lock (sysexits' EX_TEMPFAIL).
BUSY = 75


def _store(url: str | None) -> Any:
    from vault.audit.archive_store import open_store

    return open_store(url or None)


def cmd_audit_archive(settings: Settings, args: argparse.Namespace) -> int:
    from vault.audit.archive import archive_before
    from vault.audit.archive_months import parse_month

    before = parse_month(args.before)  # InvalidInput: exit 2, nothing opened
    _check_wait(args)
    store = _store(args.to)
    yield_cpu(args)

    async def job(ctx: VaultContext) -> Any:
        return await archive_before(
            ctx,
            before,
            store,
            progress=progress,
            actor=admin_actor(),
            wait=args.wait,
            pace=not args.no_pace,
        )

    with CliProgress() as progress:
        report = _locked_run(settings, job)
        if report is None:
            return BUSY
    waiting = (
        f"; month {report.waiting} waits for the sealer (run again later)" if report.waiting else ""
    )
    paused = f"; paused {report.paused:.1f} s while other sessions worked" if report.paused else ""
    text = (
        f"archived {len(report.months)} months ({report.events} events) to {store.url}"
        + (f": {', '.join(report.months)}" if report.months else "")
        + waiting
        + paused
    )
    _summary(
        args,
        progress,
        text,
        months=report.months,
        events=report.events,
        waiting=report.waiting,
        paused_seconds=report.paused,
    )
    return 0


def cmd_audit_prune(settings: Settings, args: argparse.Namespace) -> int:
    from vault.audit.prune import prune

    async def job(ctx: VaultContext) -> Any:
        months = args.months or ctx.controller.audit_retention_months
        pruned = await prune(ctx, months, progress=progress, actor=admin_actor(), wait=args.wait)
        return months, pruned

    if args.months is not None and args.months < 1:
        raise UsageError(f"--months {args.months} must be at least 1")
    _check_wait(args)
    yield_cpu(args)
    with CliProgress() as progress:
        done = _locked_run(settings, job)
        if done is None:
            return BUSY
        months, report = done
    kept = f"; kept from {report.kept_from}" if report.kept_from else ""
    _summary(
        args,
        progress,
        f"pruned {len(report.months)} archived months ({report.events} events) past "
        f"{months} months of retention{kept}",
        months=report.months,
        events=report.events,
        retention_months=months,
    )
    return 0


def _check_wait(args: argparse.Namespace) -> None:
    if not 0 <= args.wait <= 86400:
        raise UsageError(f"--wait {args.wait:g} must be between 0 and 86400 seconds")


def _locked_run(settings: Settings, job: Any) -> Any:
    """`run_with_vault`, or None after one `error:` line when another run holds the lock."""
    try:
        return run_with_vault(settings, job)
    except ArchiveBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def verify_with_archive(
    settings: Settings, args: argparse.Namespace, public: Any, checkpoints: Path
) -> int:
    """`audit verify --archive [URL]`: the segments, then the live table after them."""
    from vault.audit.archive_verify import verify_archive

    store = _store(args.archive)

    async def job(ctx: VaultContext) -> Any:
        return await verify_archive(
            ctx,
            store,
            public_key=public,
            checkpoint_file=checkpoints,
            workers=args.workers or os.cpu_count() or 1,
            progress=progress,
        )

    with CliProgress() as progress:
        report = run_with_vault(settings, job)
    live = report.live
    if not report.ok:
        seq = report.broken_seq if live is None else live.broken_seq
        problem = report.problem if live is None else live.problem
        where = "archive" if live is None else "live table"
        print(f"BROKEN in the {where} at seq {seq}: {problem}", file=sys.stderr)
        if args.json:
            print(json.dumps(progress.summary(command="audit verify", ok=False, broken_seq=seq)))
        return 1
    verified, unsealed = (live.verified, live.unsealed) if live is not None else (0, 0)
    _summary(
        args,
        progress,
        f"OK: {report.events} archived events in {report.segments} segments and "
        f"{verified} live events verified as one chain, {unsealed} not sealed yet",
        ok=True,
        archived=report.events,
        segments=report.segments,
        verified=verified,
        unsealed=unsealed,
    )
    return 0


def _summary(args: argparse.Namespace, progress: CliProgress, text: str, **extra: Any) -> None:
    if args.json:
        summary = progress.summary(command=args.command_name, **extra)
        print(json.dumps(summary, sort_keys=True))
    else:
        print(text)


def add_parsers(audit: Any) -> None:
    """The archive and prune subcommands of `tresor audit`."""
    s = audit.add_parser(
        "archive",
        help="write closed months before --before as signed segments (resumable)",
    )
    s.add_argument("--before", required=True, help="archive the months before this YYYY-MM")
    s.add_argument(
        "--to",
        help="a directory (path or file://) or s3://bucket/prefix (default: TRESOR_ARCHIVE_URL; "
        "S3 endpoint from TRESOR_ARCHIVE_S3_ENDPOINT or the AWS variables)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON summary line instead")
    s.add_argument(
        "--no-pace",
        action="store_true",
        help="never pause: by default, while other sessions work on the database (lookups), "
        "each page read is followed by a pause of twice its time",
    )
    _wait_flag(s)
    nice_flag(s)
    s.set_defaults(func=cmd_audit_archive, command_name="audit archive")
    s = audit.add_parser(
        "prune",
        help="delete archived months older than audit_retention_months (controller.toml)",
    )
    s.add_argument(
        "--months", type=int, help="retention in months (default: the policy's, 36 if unset)"
    )
    s.add_argument("--json", action="store_true", help="print one JSON summary line instead")
    _wait_flag(s)
    nice_flag(s)
    s.set_defaults(func=cmd_audit_prune, command_name="audit prune")


def _wait_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="when another archive or prune is running, wait up to this long for it "
        f"(default 0: exit with {BUSY} at once)",
    )


def add_verify_flag(verify: argparse.ArgumentParser) -> None:
    verify.add_argument(
        "--archive",
        nargs="?",
        const="",
        metavar="URL",
        help="verify the archived segments first (default URL: TRESOR_ARCHIVE_URL), then the "
        "live table as the same chain",
    )
