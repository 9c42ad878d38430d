"""The `tresor` command: init, serve, db, openapi, clients, keys, audit, recipients.

Admin actions at the CLI are audited with the actor `admin:cli@<user>`. The new API key of
`tresor clients create` is the last line of its output, so scripts can take `| tail -1`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api import cli_archive, cli_db, cli_help
from api.cli_clients import add_parsers as add_client_parsers
from api.cli_support import UsageError, admin_actor, nice_flag, run_with_vault, yield_cpu
from api.progress import INTERRUPTED, CliProgress
from api.recipients import cli as recipients_cli
from api.serving import TlsOptionsError, cmd_jobs, cmd_serve, describe_db, load_policies_of
from vault.catalogue.source import PolicyError
from vault.context import VaultContext
from vault.crypto import KeyringError, LocalKeyring
from vault.errors import InvalidInput, VaultError
from vault.settings import Settings, SettingsError
from vault.storage.db import upgrade

if TYPE_CHECKING:
    from vault.admin.housekeeping import Purged
    from vault.rights.retention import RetentionReport

_admin = admin_actor
_run = run_with_vault


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    load_policies_of(settings)  # fail before creating anything
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.keyring_path.exists():
        if not args.if_missing:
            print(
                f"error: keyring {settings.keyring_path} already exists; refusing to overwrite "
                "keys (use --if-missing to only apply migrations)",
                file=sys.stderr,
            )
            return 1
        print(f"keyring: {settings.keyring_path} (kept)")
    else:
        LocalKeyring.create(settings.keyring_path)
        print(f"keyring: {settings.keyring_path} (created, mode 0600)")
    settings.outbox_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(settings.effective_database_url)
    print(f"database: {describe_db(settings)} (migrated to head)")
    print(f"outbox: {settings.outbox_dir}")
    return 0


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    from api.app import openapi_document

    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
    return 0


def _rewrap_options(settings: Settings, args: argparse.Namespace, progress: Any) -> Any:
    """Batch size, worker processes and the picklable factory that opens the KEK provider
    in each worker (the same provider this process uses)."""
    from functools import partial

    from vault.admin.keys import RewrapOptions
    from vault.context import open_kek_provider

    return RewrapOptions(
        batch=args.batch,
        workers=args.workers or os.cpu_count() or 1,
        open_kek=partial(open_kek_provider, settings),
        progress=progress,
        pace=not args.no_pace,
    )


def _finish(args: argparse.Namespace, progress: CliProgress, text: str, **extra: Any) -> None:
    """The human summary, or with `--json` one JSON line (counts and seconds only)."""
    if getattr(args, "json", False):
        print(json.dumps(progress.summary(command=args.command_name, **extra), sort_keys=True))
    else:
        print(text)


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.keys import resume_rotation, rotate

    step = resume_rotation if args.resume else rotate
    yield_cpu(args)
    with CliProgress() as progress:
        options = _rewrap_options(settings, args, progress)
        report = _run(settings, lambda ctx: step(ctx, _admin(), options))
    _finish(
        args,
        progress,
        f"KEK version {report.new_version} active; re-wrapped {report.rewrapped} DEKs; "
        f"{report.remaining} still under older versions",
        new_version=report.new_version,
        rewrapped=report.rewrapped,
        remaining=report.remaining,
    )
    return 0 if report.remaining == 0 else 1


def cmd_keys_retire(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.keys import retire_unused

    removed = _run(settings, lambda ctx: retire_unused(ctx, _admin()))
    print("retired KEK versions: " + (", ".join(map(str, removed)) or "none"))
    return 0


def cmd_keys_status(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.keys import retained_versions_in_use, versions_in_use

    async def job(ctx: VaultContext) -> tuple[int, list[tuple[int, str]], dict, dict]:
        where = getattr(ctx.kek, "location", None)  # PKCS#11: token or keyring file
        versions = [(v, f" [{where(v)}]" if where else "") for v in ctx.kek.versions()]
        used, retained = await versions_in_use(ctx), await retained_versions_in_use(ctx)
        return ctx.kek.active_version(), versions, used, retained

    active, versions, used, retained = _run(settings, job)
    if args.json:
        rows = [
            {
                "version": v,
                "active": v == active,
                "location": place.strip(" []") or None,
                "deks": used.get(v, 0),
                "retained_field_keys": retained.get(v, 0),
            }
            for v, place in versions
        ]
        print(json.dumps(rows))
        return 0
    for v, place in versions:
        mark = " (active)" if v == active else ""
        kept = f", {retained[v]} retained-field keys" if retained.get(v) else ""
        print(f"KEK v{v}{place}{mark}: {used.get(v, 0)} DEKs{kept}")
    return 0


def cmd_keys_migrate_to_pkcs11(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.keys import migrate_to_pkcs11

    yield_cpu(args)
    with CliProgress() as progress:
        options = _rewrap_options(settings, args, progress)
        report = _run(settings, lambda ctx: migrate_to_pkcs11(ctx, _admin(), options))
    state = "created" if report.created else "already on the token"
    _finish(
        args,
        progress,
        f"KEK version {report.token_version} on the PKCS#11 token active ({state}); "
        f"re-wrapped {report.rewrapped} keys; {report.remaining_local} still under "
        "keyring-file versions",
        token_version=report.token_version,
        created=report.created,
        rewrapped=report.rewrapped,
        remaining_local=report.remaining_local,
    )
    return 0 if report.remaining_local == 0 else 1


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from vault.audit import verify as audit_verify
    from vault.crypto import VerifyKey

    public = None
    if args.public_key:
        try:  # checkpoints are signed with Ed25519
            public = VerifyKey.from_pem(Path(args.public_key).read_bytes())
        except OSError as exc:
            raise UsageError(f"--public-key {args.public_key}: {exc.strerror}") from None
        except ValueError:
            print(f"error: {args.public_key} is not an Ed25519 public key", file=sys.stderr)
            return 2
    anchor = Path(args.checkpoints) if args.checkpoints else settings.audit_checkpoint_path
    yield_cpu(args)
    if args.archive is not None:
        return cli_archive.verify_with_archive(settings, args, public, anchor)
    with CliProgress() as progress:
        report = _run(
            settings,
            lambda ctx: audit_verify.verify_chain(
                ctx,
                public_key=public,
                checkpoint_file=anchor,
                workers=args.workers or os.cpu_count() or 1,
                since_checkpoint=args.since_checkpoint,
                progress=progress,
            ),
        )
    seconds = progress.seconds()
    rate = report.verified / seconds if seconds > 0 else 0.0
    if not report.ok:
        where = f"at seq {report.broken_seq}" if report.broken_seq is not None else f"({anchor})"
        print(
            f"BROKEN {where}: {report.problem} ({report.verified} events verified before it)",
            file=sys.stderr,
        )
        if args.json:
            print(
                json.dumps(
                    progress.summary(command="audit verify", ok=False, broken_seq=report.broken_seq)
                )
            )
        return 1
    since = f" after position {report.started_after}" if report.started_after else ""
    _finish(
        args,
        progress,
        f"OK: {report.verified} events verified{since}, {report.checkpoints} signed "
        f"checkpoints, {report.unsealed} not sealed yet ({seconds:.2f} s, {rate:,.0f} "
        "events/s); " + _anchor_summary(report.checkpoint_file, anchor),
        ok=True,
        verified=report.verified,
        started_after=report.started_after,
        unsealed=report.unsealed,
    )
    return 0


def _anchor_summary(found: Any, path: Path) -> str:
    """What the checkpoint file outside the database contributed to the verification."""
    if found is None or not found.exists:
        return f"no checkpoint file at {path}: nothing outside the database compared"
    if found.newest is None:
        return f"checkpoint file {path} is empty"
    return (
        f"checkpoint file {path}: newest of {found.lines} checkpoints (position "
        f"{found.newest.chain_pos}) matches"
    )


def cmd_audit_witness(settings: Settings, args: argparse.Namespace) -> int:
    """Print the newest signed checkpoint in the database as one checkpoint-file line, for
    a witness outside this system (cron: `tresor audit witness | ssh witness 'cat >>
    tresor.jsonl'`); `tresor audit verify --checkpoints` checks the chain against it."""
    from vault.audit import checkpoints

    async def job(ctx: VaultContext) -> Any:
        return await checkpoints.newest_checkpoint(ctx)

    checkpoint = _run(settings, job)
    if checkpoint is None:
        print("error: no checkpoint yet (run `tresor audit seal`)", file=sys.stderr)
        return 1
    sys.stdout.write(checkpoint.line().decode())
    return 0


def cmd_audit_seal(settings: Settings, args: argparse.Namespace) -> int:
    from vault.audit import chain as audit_chain

    sealed = _run(settings, lambda ctx: audit_chain.seal_all(ctx, max_wait_seconds=12.0))
    print(f"sealed {sealed} events")
    return 0


def cmd_audit_public_key(settings: Settings, args: argparse.Namespace) -> int:
    from vault.audit import checkpoints

    async def job(ctx: VaultContext) -> str:
        return checkpoints.public_key_pem(ctx)

    print(_run(settings, job), end="")
    return 0


def _parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return cli_help.iso_time(value)


def cmd_audit_export(settings: Settings, args: argparse.Namespace) -> int:
    from vault.audit import export as audit_export

    since, until = _parse_time(args.since), _parse_time(args.until)
    if since and until and since >= until:
        raise UsageError(f"--since {args.since} is not before --until {args.until}")
    yield_cpu(args)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout

    async def job(ctx: VaultContext) -> int:
        count = 0
        progress.begin("export audit events", None)
        if args.format == "csv":
            out.write(audit_export.csv_header())
        async for item in audit_export.iter_events(ctx, since=since, until=until):
            out.write(
                audit_export.to_csv(item) if args.format == "csv" else audit_export.to_jsonl(item)
            )
            count += 1
            if count % 1000 == 0:
                progress.advance(1000)
        progress.advance(count % 1000)
        return count

    try:
        with CliProgress() as progress:
            count = _run(settings, job)
    finally:
        if out is not sys.stdout:
            out.close()
    if args.json:  # stdout may carry the export itself: the summary goes to stderr
        summary = progress.summary(command="audit export", exported=count)
        print(json.dumps(summary, sort_keys=True), file=sys.stderr)
    else:
        print(f"exported {count} events", file=sys.stderr)
    return 0


def cmd_retention_run(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.housekeeping import purge_transient
    from vault.rights.retention import run_retention
    from vault.rights.retention_plan import replan

    async def sweep(ctx: VaultContext) -> tuple[int, RetentionReport, Purged]:
        stamped = await replan(ctx, progress=progress) if args.replan else 0
        report = await run_retention(ctx, progress=progress)
        return stamped, report, await purge_transient(ctx)

    yield_cpu(args)
    with CliProgress() as progress:
        replanned, report, purged = _run(settings, sweep)
    _finish(
        args,
        progress,
        (f"looked at all {replanned} active or restricted subjects again; " if args.replan else "")
        + f"expired {report.expired} consents; lapsed {report.lapsed} unconfirmed double "
        f"opt-ins; erased {report.erased} subjects ({report.erased_with_retained} keeping "
        f"legal-obligation fields); shredded {report.shredded} retained field sets; "
        f"skipped {report.skipped} (restricted, open request or unknown purpose); "
        f"{report.without_basis} subjects without any basis left alone; "
        f"deleted {report.pruned_mails} outbox mails; brought {report.upgraded_rows} rows "
        f"from before migration 0013 up to date; deleted {purged.idempotency_records} "
        f"expired idempotency records and {purged.limit_counters} ended limit counters",
        expired=report.expired,
        lapsed=report.lapsed,
        erased=report.erased,
        shredded=report.shredded,
        skipped=report.skipped,
        without_basis=report.without_basis,
        idempotency_records=purged.idempotency_records,
        limit_counters=purged.limit_counters,
        replanned=replanned,
    )
    return 0


def _json_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--json", action="store_true", help="print one JSON summary line at the end instead"
    )


def _rewrap_flags(s: argparse.ArgumentParser) -> None:
    from vault.admin.rewrap import DEFAULT_BATCH

    s.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="keys per transaction")
    s.add_argument(
        "--workers",
        type=int,
        help="key ranges re-wrapped at once on PostgreSQL, each on its own connection "
        "(a process each with a PKCS#11 token; default: one per core)",
    )
    s.add_argument(
        "--no-pace",
        action="store_true",
        help="never pause: by default a batch that ran markedly slower than the fastest one "
        "(other work, e.g. lookups, wants the machine) is followed by a pause in proportion",
    )
    nice_flag(s)
    _json_flag(s)


def build_parser() -> argparse.ArgumentParser:
    p = cli_help.TresorParser(prog="tresor", description="Tresor privacy vault")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="create data dir and keyring, apply migrations")
    s.add_argument("--if-missing", action="store_true", help="keep an existing keyring")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("serve", help="serve the API and web pages")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="HTTP worker processes. On SQLite each process reads on its own connections "
        "and commits its own audit groups, but the file has one write lock the processes "
        "take in turn (waiting up to 30 s, then 503): more workers add read throughput, "
        "not write throughput, and each runs the periodic jobs inline",
    )
    s.add_argument(
        "--jobs",
        choices=["process", "inline", "off"],
        help="where the periodic jobs (audit sealer, retention) run: a process of their own "
        "(default on PostgreSQL), inside each worker (default on SQLite), or not on this node "
        "(another node runs `tresor jobs`)",
    )
    s.add_argument("--tls-cert", help="serve TLS with this certificate (PEM, chain first)")
    s.add_argument("--tls-key", help="the certificate's private key (PEM)")
    s.add_argument(
        "--client-ca",
        help="verify client certificates against this CA (PEM); a verified certificate bound "
        "with `tresor clients cert` authenticates its client without a key",
    )
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("jobs", help="run the periodic jobs (audit sealer, retention) only")
    s.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_jobs)

    cli_db.add_parsers(sub)

    s = sub.add_parser("openapi", help="print the OpenAPI document")
    s.set_defaults(func=cmd_openapi)

    add_client_parsers(sub)

    k = sub.add_parser("keys", help="key management").add_subparsers(dest="keys", required=True)
    s = k.add_parser("rotate", help="add a KEK version and re-wrap every DEK (online)")
    s.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted rotation under the active version (adds no version)",
    )
    _rewrap_flags(s)
    s.set_defaults(func=cmd_keys_rotate, command_name="keys rotate")
    s = k.add_parser("retire", help="remove KEK versions no DEK uses any more")
    s.set_defaults(func=cmd_keys_retire)
    s = k.add_parser("status", help="KEK versions and how many DEKs each wraps")
    s.add_argument("--json", action="store_true", help="print one JSON array")
    s.set_defaults(func=cmd_keys_status)
    s = k.add_parser(
        "migrate-to-pkcs11",
        help="create the first KEK on the PKCS#11 token and re-wrap every key under it "
        "(resumable; needs TRESOR_KEK_PROVIDER=pkcs11)",
    )
    _rewrap_flags(s)
    s.set_defaults(func=cmd_keys_migrate_to_pkcs11, command_name="keys migrate-to-pkcs11")

    a = sub.add_parser("audit", help="audit trail").add_subparsers(dest="audit", required=True)
    s = a.add_parser("verify", help="check the whole chain and every checkpoint signature")
    s.add_argument("--public-key", help="verify checkpoints with this exported PEM key")
    s.add_argument(
        "--checkpoints",
        help="checkpoint file to compare the chain with (default: TRESOR_AUDIT_CHECKPOINT_FILE "
        "or audit-checkpoints.jsonl in the data dir; e.g. a witness's copy)",
    )
    s.add_argument(
        "--since-checkpoint",
        action="store_true",
        help="verify only what follows the newest checkpoint the last successful run "
        "recorded (audit-verified.json beside the checkpoint file)",
    )
    s.add_argument("--workers", type=int, help="processes checking ranges (default: one per core)")
    cli_archive.add_verify_flag(s)
    _json_flag(s)
    nice_flag(s)
    s.set_defaults(func=cmd_audit_verify, command_name="audit verify")
    cli_archive.add_parsers(a)
    s = a.add_parser(
        "witness", help="print the newest signed checkpoint as one line, for an outside witness"
    )
    s.set_defaults(func=cmd_audit_witness)
    s = a.add_parser("seal", help="seal every pending event now")
    s.set_defaults(func=cmd_audit_seal)
    s = a.add_parser("public-key", help="print the checkpoint verification key (PEM)")
    s.set_defaults(func=cmd_audit_public_key)
    s = a.add_parser("export", help="export events by time range")
    s.add_argument("--since", type=cli_help.iso_time, help="ISO time, inclusive (UTC if no offset)")
    s.add_argument("--until", type=cli_help.iso_time, help="ISO time, exclusive")
    s.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    s.add_argument("--output", help="file to write (default: stdout)")
    _json_flag(s)
    nice_flag(s)
    s.set_defaults(func=cmd_audit_export)

    r = sub.add_parser("retention", help="retention sweeper").add_subparsers(
        dest="retention", required=True
    )
    s = r.add_parser("run", help="expire, lapse, erase and shred what outlived its retention")
    s.add_argument(
        "--replan",
        action="store_true",
        help="look at every active or restricted subject again, not only those stamped due "
        "(once, after a purpose's retention_after_end was shortened); O(subjects)",
    )
    nice_flag(s)
    _json_flag(s)
    s.set_defaults(func=cmd_retention_run, command_name="retention run")
    recipients_cli.add_parser(sub, _run, _admin)
    return cli_help.finish(p)


def _say(message: object) -> None:
    """One `error:` line on stderr, whatever the message holds."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Keyring, SQLite file, WAL and outbox are readable by the vault's user only.
    os.umask(0o077)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        _say(exc)
        return 2
    try:
        return int(args.func(settings, args))
    except KeyboardInterrupt:
        # Every batch commits on its own: what is done stays done, the rest is still marked
        # as to do (a DEK's KEK version, the recorded checkpoint), so a re-run resumes.
        print(
            "interrupted: the work committed so far is kept; run the same command again to resume",
            file=sys.stderr,
        )
        return INTERRUPTED
    except UsageError as exc:
        _say(exc)
        return 2
    except PolicyError as exc:
        kind = "purpose catalogue"
        if "contact-pressure" in str(exc):
            kind = "contact-pressure rules"
        elif "touchpoints" in str(exc):
            kind = "touchpoint catalogue"
        print(f"error: invalid {kind}: {exc}", file=sys.stderr)
        return 2
    except TlsOptionsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyringError as exc:
        hint = "" if settings.keyring_path.exists() else " (run `tresor init` first?)"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except VaultError as exc:
        detail = "; ".join(f"{k} {v}" for k, v in getattr(exc, "errors", {}).items())
        _say(f"{exc}" + (f" ({detail})" if detail else ""))
        return 2 if isinstance(exc, InvalidInput) else 1
    except Exception as exc:  # noqa: BLE001 - the terminal gets one line, never a traceback
        _say(f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
