"""The `tresor` command: init, serve, db upgrade, openapi, clients, keys, recipients.

Admin actions at the CLI are audited with the actor `admin:cli@<user>`. The new API key of
`tresor clients create` is the last line of its output, so scripts can take `| tail -1`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.cli_clients import add_parsers as add_client_parsers
from api.cli_support import admin_actor, run_with_vault
from api.recipients import cli as recipients_cli
from api.serving import TlsOptionsError, cmd_jobs, cmd_serve, describe_db, load_policies_of
from vault.catalogue.source import PolicyError
from vault.context import VaultContext
from vault.crypto import KeyringError, LocalKeyring
from vault.errors import VaultError
from vault.settings import Settings
from vault.storage.db import upgrade

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


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.database_url:
        # The embedded SQLite file lives in the data dir, which may not exist yet.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(settings.effective_database_url, args.revision)
    print(f"database: {describe_db(settings)} (migrated to {args.revision})")
    return 0


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    from api.app import openapi_document

    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
    return 0


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.keys import rotate

    report = _run(settings, lambda ctx: rotate(ctx, _admin()))
    print(
        f"KEK version {report.new_version} active; re-wrapped {report.rewrapped} DEKs; "
        f"{report.remaining} still under older versions"
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
    for v, place in versions:
        mark = " (active)" if v == active else ""
        kept = f", {retained[v]} retained-field keys" if retained.get(v) else ""
        print(f"KEK v{v}{place}{mark}: {used.get(v, 0)} DEKs{kept}")
    return 0


def cmd_keys_migrate_to_pkcs11(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.keys import migrate_to_pkcs11

    report = _run(settings, lambda ctx: migrate_to_pkcs11(ctx, _admin()))
    state = "created" if report.created else "already on the token"
    print(
        f"KEK version {report.token_version} on the PKCS#11 token active ({state}); "
        f"re-wrapped {report.rewrapped} keys; {report.remaining_local} still under "
        "keyring-file versions"
    )
    return 0 if report.remaining_local == 0 else 1


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from vault.audit import chain as audit_chain
    from vault.crypto import VerifyKey

    public = None
    if args.public_key:
        try:  # checkpoints are signed with Ed25519
            public = VerifyKey.from_pem(Path(args.public_key).read_bytes())
        except ValueError:
            print(f"error: {args.public_key} is not an Ed25519 public key", file=sys.stderr)
            return 2
    anchor = Path(args.checkpoints) if args.checkpoints else settings.audit_checkpoint_path
    started = time.perf_counter()
    report = _run(
        settings,
        lambda ctx: audit_chain.verify_chain(ctx, public_key=public, checkpoint_file=anchor),
    )
    seconds = time.perf_counter() - started
    rate = report.verified / seconds if seconds > 0 else 0.0
    if not report.ok:
        where = f"at seq {report.broken_seq}" if report.broken_seq is not None else f"({anchor})"
        print(
            f"BROKEN {where}: {report.problem} ({report.verified} events verified before it)",
            file=sys.stderr,
        )
        return 1
    print(
        f"OK: {report.verified} events verified, {report.checkpoints} signed checkpoints, "
        f"{report.unsealed} not sealed yet ({seconds:.2f} s, {rate:,.0f} events/s); "
        + _anchor_summary(report.checkpoint_file, anchor)
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
    from vault.audit import chain as audit_chain

    async def job(ctx: VaultContext) -> Any:
        return await audit_chain.newest_checkpoint(ctx)

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
    from vault.audit import chain as audit_chain

    async def job(ctx: VaultContext) -> str:
        return audit_chain.public_key_pem(ctx)

    print(_run(settings, job), end="")
    return 0


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_audit_export(settings: Settings, args: argparse.Namespace) -> int:
    from vault.audit import export as audit_export

    since, until = _parse_time(args.since), _parse_time(args.until)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout

    async def job(ctx: VaultContext) -> int:
        count = 0
        if args.format == "csv":
            out.write(audit_export.csv_header())
        async for item in audit_export.iter_events(ctx, since=since, until=until):
            out.write(
                audit_export.to_csv(item) if args.format == "csv" else audit_export.to_jsonl(item)
            )
            count += 1
        return count

    try:
        count = _run(settings, job)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {count} events", file=sys.stderr)
    return 0


def cmd_retention_run(settings: Settings, args: argparse.Namespace) -> int:
    from vault.rights.retention import run_retention

    report = _run(settings, run_retention)
    print(
        f"expired {report.expired} consents; lapsed {report.lapsed} unconfirmed double "
        f"opt-ins; erased {report.erased} subjects ({report.erased_with_retained} keeping "
        f"legal-obligation fields); shredded {report.shredded} retained field sets; "
        f"skipped {report.skipped} (restricted, open request or unknown purpose); "
        f"{report.without_basis} subjects without any basis left alone; "
        f"deleted {report.pruned_mails} outbox mails; brought {report.upgraded_rows} rows "
        f"from before migration 0013 up to date"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tresor", description="Tresor privacy vault")
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

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    s = db.add_parser("upgrade", help="apply Alembic migrations")
    s.add_argument("revision", nargs="?", default="head")
    s.set_defaults(func=cmd_db_upgrade)

    s = sub.add_parser("openapi", help="print the OpenAPI document")
    s.set_defaults(func=cmd_openapi)

    add_client_parsers(sub)

    k = sub.add_parser("keys", help="key management").add_subparsers(dest="keys", required=True)
    s = k.add_parser("rotate", help="add a KEK version and re-wrap every DEK (online)")
    s.set_defaults(func=cmd_keys_rotate)
    s = k.add_parser("retire", help="remove KEK versions no DEK uses any more")
    s.set_defaults(func=cmd_keys_retire)
    s = k.add_parser("status", help="KEK versions and how many DEKs each wraps")
    s.set_defaults(func=cmd_keys_status)
    s = k.add_parser(
        "migrate-to-pkcs11",
        help="create the first KEK on the PKCS#11 token and re-wrap every key under it "
        "(resumable; needs TRESOR_KEK_PROVIDER=pkcs11)",
    )
    s.set_defaults(func=cmd_keys_migrate_to_pkcs11)

    a = sub.add_parser("audit", help="audit trail").add_subparsers(dest="audit", required=True)
    s = a.add_parser("verify", help="check the whole chain and every checkpoint signature")
    s.add_argument("--public-key", help="verify checkpoints with this exported PEM key")
    s.add_argument(
        "--checkpoints",
        help="checkpoint file to compare the chain with (default: TRESOR_AUDIT_CHECKPOINT_FILE "
        "or audit-checkpoints.jsonl in the data dir; e.g. a witness's copy)",
    )
    s.set_defaults(func=cmd_audit_verify)
    s = a.add_parser(
        "witness", help="print the newest signed checkpoint as one line, for an outside witness"
    )
    s.set_defaults(func=cmd_audit_witness)
    s = a.add_parser("seal", help="seal every pending event now")
    s.set_defaults(func=cmd_audit_seal)
    s = a.add_parser("public-key", help="print the checkpoint verification key (PEM)")
    s.set_defaults(func=cmd_audit_public_key)
    s = a.add_parser("export", help="export events by time range")
    s.add_argument("--since", help="ISO time, inclusive (UTC if no offset)")
    s.add_argument("--until", help="ISO time, exclusive")
    s.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    s.add_argument("--output", help="file to write (default: stdout)")
    s.set_defaults(func=cmd_audit_export)

    r = sub.add_parser("retention", help="retention sweeper").add_subparsers(
        dest="retention", required=True
    )
    s = r.add_parser("run", help="expire, lapse, erase and shred what outlived its retention")
    s.set_defaults(func=cmd_retention_run)
    recipients_cli.add_parser(sub, _run, _admin)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Keyring, SQLite file, WAL and outbox are readable by the vault's user only.
    os.umask(0o077)
    settings = Settings.from_env()
    try:
        return int(args.func(settings, args))
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
        print(f"error: {exc}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
