"""The `tresor` command: init, serve, db upgrade, openapi, clients, keys.

Admin actions at the CLI are audited with the actor `admin:cli@<user>`. The new API key of
`tresor clients create` is the last line of its output, so scripts can take `| tail -1`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from vault.audit import Actor
from vault.context import VaultContext
from vault.crypto import KeyringError, LocalKeyring
from vault.errors import VaultError
from vault.policies import PolicyError, load_catalogue
from vault.settings import Settings
from vault.storage.db import upgrade


def _admin() -> Actor:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not a reason to refuse
        user = "unknown"
    return Actor("admin", f"cli@{user}")


def _run(settings: Settings, job: Callable[[VaultContext], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        ctx = VaultContext.open(settings)
        try:
            return await job(ctx)
        finally:
            await ctx.close()

    return asyncio.run(main())


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    load_catalogue(settings.policies_dir)  # fail before creating anything
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
    print(f"database: {_describe_db(settings)} (migrated to head)")
    print(f"outbox: {settings.outbox_dir}")
    return 0


def _describe_db(settings: Settings) -> str:
    if settings.is_sqlite:
        return str(settings.sqlite_path)
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    load_catalogue(settings.policies_dir)
    LocalKeyring(settings.keyring_path)
    print(f"Tresor serving on http://{host}:{port}/  (API docs: http://{host}:{port}/schema/swagger)")
    print(f"database: {_describe_db(settings)}; outbox: {settings.outbox_dir}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )
    return 0


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    upgrade(settings.effective_database_url, args.revision)
    print(f"database: {_describe_db(settings)} (migrated to {args.revision})")
    return 0


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    from api.app import openapi_document

    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
    return 0


def cmd_clients_create(settings: Settings, args: argparse.Namespace) -> int:
    from vault.clients import create_client

    info, key = _run(
        settings, lambda ctx: create_client(ctx, _admin(), args.name, args.role, args.purpose)
    )
    purposes = ",".join(sorted(info.purposes)) or "-"
    print(f"created client {info.name} (role {info.role.value}, purposes {purposes})")
    print("API key (shown once; store it in the client's secret store):")
    print(key)
    return 0


def cmd_clients_list(settings: Settings, args: argparse.Namespace) -> int:
    from vault.clients import list_clients

    for c in _run(settings, list_clients):
        state = f"revoked {c.revoked_at:%Y-%m-%d}" if c.revoked_at else "active"
        print(f"{c.name}\t{c.role.value}\t{','.join(sorted(c.purposes)) or '-'}\t{state}")
    return 0


def cmd_clients_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from vault.clients import revoke_client

    _run(settings, lambda ctx: revoke_client(ctx, _admin(), args.name))
    print(f"revoked client {args.name}")
    return 0


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from vault.keys import rotate

    report = _run(settings, lambda ctx: rotate(ctx, _admin()))
    print(
        f"KEK version {report.new_version} active; re-wrapped {report.rewrapped} DEKs; "
        f"{report.remaining} still under older versions"
    )
    return 0 if report.remaining == 0 else 1


def cmd_keys_retire(settings: Settings, args: argparse.Namespace) -> int:
    from vault.keys import retire_unused

    removed = _run(settings, lambda ctx: retire_unused(ctx, _admin()))
    print("retired KEK versions: " + (", ".join(map(str, removed)) or "none"))
    return 0


def cmd_keys_status(settings: Settings, args: argparse.Namespace) -> int:
    from vault.keys import versions_in_use

    async def job(ctx: VaultContext) -> tuple[int, list[int], dict[int, int]]:
        return ctx.kek.active_version(), ctx.kek.versions(), await versions_in_use(ctx)

    active, versions, used = _run(settings, job)
    for v in versions:
        mark = " (active)" if v == active else ""
        print(f"KEK v{v}{mark}: {used.get(v, 0)} DEKs")
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
    s.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    s = db.add_parser("upgrade", help="apply Alembic migrations")
    s.add_argument("revision", nargs="?", default="head")
    s.set_defaults(func=cmd_db_upgrade)

    s = sub.add_parser("openapi", help="print the OpenAPI document")
    s.set_defaults(func=cmd_openapi)

    cl = sub.add_parser("clients", help="API clients").add_subparsers(dest="clients", required=True)
    s = cl.add_parser("create", help="create a client and print its key (last line)")
    s.add_argument("name")
    s.add_argument("--role", required=True, choices=["writer", "lookup", "dpo", "admin"])
    s.add_argument("--purpose", action="append", default=[], help="allowed purpose (repeat)")
    s.set_defaults(func=cmd_clients_create)
    s = cl.add_parser("list", help="list clients")
    s.set_defaults(func=cmd_clients_list)
    s = cl.add_parser("revoke", help="revoke a client's key")
    s.add_argument("name")
    s.set_defaults(func=cmd_clients_revoke)

    k = sub.add_parser("keys", help="key management").add_subparsers(dest="keys", required=True)
    s = k.add_parser("rotate", help="add a KEK version and re-wrap every DEK (online)")
    s.set_defaults(func=cmd_keys_rotate)
    s = k.add_parser("retire", help="remove KEK versions no DEK uses any more")
    s.set_defaults(func=cmd_keys_retire)
    s = k.add_parser("status", help="KEK versions and how many DEKs each wraps")
    s.set_defaults(func=cmd_keys_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Keyring, SQLite file, WAL and outbox are readable by the vault's user only.
    os.umask(0o077)
    settings = Settings.from_env()
    try:
        return int(args.func(settings, args))
    except PolicyError as exc:
        print(f"error: invalid purpose catalogue: {exc}", file=sys.stderr)
        return 2
    except KeyringError as exc:
        print(f"error: {exc} (run `tresor init` first?)", file=sys.stderr)
        return 2
    except VaultError as exc:
        detail = "; ".join(f"{k} {v}" for k, v in getattr(exc, "errors", {}).items())
        print(f"error: {exc}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
