"""`tresor clients ...`: create, list, update quotas, rotate keys, find unused ones, revoke.

Every change is audited with the actor `admin:cli@<user>` (as in `api.cli`). A new key is
the last line of the output of `create` and `rotate-key`, so scripts can take `| tail -1`;
with `--quiet` it is the only line, so a shell can set a variable from it
(`CRM=$(tresor clients create crm --role writer --quiet)`, as the README does).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from api.cli_support import UsageError, admin_actor, run_with_vault
from vault.admin.certificates import bind_certificate
from vault.admin.clients import ClientInfo, Quota
from vault.settings import Settings


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else "never"


def _quota(args: argparse.Namespace) -> Quota:
    from vault.admin.quotas import parse_rate

    rate = parse_rate(args.rate) if args.rate else None
    return Quota(rate[0] if rate else None, rate[1] if rate else None, args.daily_lookups or None)


def cmd_create(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.clients import create_client

    quota = _quota(args)
    info, key = run_with_vault(
        settings,
        lambda ctx: create_client(
            ctx, admin_actor(), args.name, args.role, args.purpose, quota, args.display_name
        ),
    )
    purposes = ",".join(sorted(info.purposes)) or "-"
    _print_key(
        args, key, f"created client {info.name} (role {info.role.value}, purposes {purposes})"
    )
    return 0


def _print_key(args: argparse.Namespace, key: str, summary: str) -> None:
    """The summary, the warning and the key; with `--quiet` the key alone."""
    if not args.quiet:
        print(summary)
        print("API key (shown once; store it in the client's secret store):")
    print(key)


def _line(c: ClientInfo) -> str:
    from vault.admin.quotas import format_rate

    state = f"revoked {c.revoked_at:%Y-%m-%d}" if c.revoked_at else "active"
    if c.previous_key_until and not c.revoked_at:
        state += f" (old key until {_when(c.previous_key_until)})"
    return "\t".join(
        (
            c.name,
            c.role.value,
            ",".join(sorted(c.purposes)) or "-",
            state,
            f"key {_when(c.key_created_at)}",
            f"used {_when(c.last_used_at)}",
            f"rate {format_rate(c.quota)}",
            f"lookups/day {c.quota.daily_lookups or '-'}",
        )
    )


_HEADER = "name\trole\tpurposes\tstate\tkey\tlast use\trate\tlookups/day"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _record(c: ClientInfo) -> dict[str, Any]:
    """One client for `--json`: what the table shows, as fields (never a key or its hash)."""
    return {
        "name": c.name,
        "display_name": c.display_name,
        "role": c.role.value,
        "purposes": sorted(c.purposes),
        "revoked_at": _iso(c.revoked_at),
        "key_created_at": _iso(c.key_created_at),
        "last_used_at": _iso(c.last_used_at),
        "previous_key_until": _iso(c.previous_key_until),
        "rate": c.quota.rate,
        "window_seconds": c.quota.window,
        "daily_lookups": c.quota.daily_lookups,
    }


def _table(clients: list[ClientInfo], args: argparse.Namespace) -> None:
    """`--json`: one JSON array. Else tab-separated lines, with a header line only for a
    person at a terminal, so `| cut -f1` keeps working."""
    if args.json:
        print(json.dumps([_record(c) for c in clients]))
        return
    if clients and sys.stdout.isatty():
        print(_HEADER)
    for c in clients:
        print(_line(c))


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.clients import list_clients

    _table(run_with_vault(settings, list_clients), args)
    return 0


def cmd_unused(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.hygiene import unused_clients

    found = run_with_vault(settings, lambda ctx: unused_clients(ctx, args.days))
    _table(found, args)
    if not found and not args.json:
        print(f"no active client left unused for {args.days} days")
    return 0


def cmd_update(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.clients import set_display_name
    from vault.admin.quotas import parse_rate, set_quota

    if args.rate is None and args.daily_lookups is None and args.display_name is None:
        raise UsageError("name --rate, --daily-lookups and/or --display-name")
    rate = False if args.rate is None else parse_rate(args.rate)
    lookups = False if args.daily_lookups is None else (args.daily_lookups or None)

    async def update(ctx: Any) -> None:
        if args.display_name is not None:
            await set_display_name(ctx, admin_actor(), args.name, args.display_name)
        if args.rate is not None or args.daily_lookups is not None:
            await set_quota(ctx, admin_actor(), args.name, rate=rate, daily_lookups=lookups)

    run_with_vault(settings, update)
    print(f"updated client {args.name}")
    return 0


def cmd_rotate_key(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.hygiene import parse_duration, rotate_key

    grace = parse_duration(args.grace)
    info, key = run_with_vault(
        settings, lambda ctx: rotate_key(ctx, admin_actor(), args.name, grace)
    )
    until = info.previous_key_until
    _print_key(
        args,
        key,
        f"new key for client {info.name}; the old key "
        + (f"stays valid until {until:%Y-%m-%d %H:%M} UTC" if until else "no longer works"),
    )
    return 0


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from vault.admin.clients import revoke_client

    run_with_vault(settings, lambda ctx: revoke_client(ctx, admin_actor(), args.name))
    print(f"revoked client {args.name}")
    return 0


def cmd_cert(settings: Settings, args: argparse.Namespace) -> int:
    subject = None if args.unbind else args.subject
    bound = run_with_vault(
        settings, lambda ctx: bind_certificate(ctx, admin_actor(), args.name, subject)
    )
    print(f"client {args.name}: " + (f"certificate subject {bound}" if bound else "no certificate"))
    return 0


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    """The `clients` command and its subcommands."""
    cl = sub.add_parser("clients", help="API clients").add_subparsers(dest="clients", required=True)
    s = cl.add_parser("create", help="create a client and print its key (last line)")
    s.add_argument("name", help="the client's unique name (letters, digits, . _ -)")
    s.add_argument(
        "--role", required=True, choices=["writer", "lookup", "dpo", "admin", "marketing"]
    )
    s.add_argument("--purpose", action="append", default=[], help="allowed purpose (repeat)")
    _quota_options(s)
    s.add_argument(
        "--quiet", action="store_true", help="print only the key (for KEY=$(tresor ...))"
    )
    _display_name_option(s)
    s.set_defaults(func=cmd_create)
    s = cl.add_parser("list", help="list clients with key creation, last use and quotas")
    s.add_argument("--json", action="store_true", help="print one JSON array")
    s.set_defaults(func=cmd_list)
    s = cl.add_parser("update", help="change a client's quotas or display name")
    s.add_argument("name")
    _quota_options(s)
    _display_name_option(s)
    s.set_defaults(func=cmd_update)
    s = cl.add_parser(
        "rotate-key", help="issue a new key (last line); the old one works for --grace"
    )
    s.add_argument("name")
    s.add_argument("--grace", default="7d", help="how long the old key stays valid (7d, 12h, 0)")
    s.add_argument(
        "--quiet", action="store_true", help="print only the key (for KEY=$(tresor ...))"
    )
    s.set_defaults(func=cmd_rotate_key)
    s = cl.add_parser("unused", help="list active clients whose key was not used for --days")
    s.add_argument("--days", type=int, default=90, help="days without an authenticated use")
    s.add_argument("--json", action="store_true", help="print one JSON array")
    s.set_defaults(func=cmd_unused)
    s = cl.add_parser("revoke", help="revoke a client's key")
    s.add_argument("name")
    s.set_defaults(func=cmd_revoke)
    s = cl.add_parser("cert", help="bind a client certificate subject to a client (mTLS)")
    s.add_argument("name")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--subject", help='the certificate subject, RFC 4514, e.g. "CN=billing,O=Example"'
    )
    g.add_argument("--unbind", action="store_true", help="remove the client's certificate binding")
    s.set_defaults(func=cmd_cert)


def _quota_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--rate", help="requests per s, m or h across all nodes, e.g. 200/s; off")
    s.add_argument(
        "--daily-lookups", type=int, help="lookups per UTC day (a batch counts each); 0: none"
    )


def _display_name_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--display-name",
        help='what customers read for this system in the privacy centre, e.g. "Online-Shop" '
        '("" clears it; default: the name)',
    )
