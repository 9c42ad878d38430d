"""`tresor recipients ...`: the admin's commands for recipients (the API offers the same).

Registered by `api.cli.build_parser`, which passes its runner and actor, so the commands
run and are audited like every other admin command (`admin:cli@<user>`). A new secret is
the last line of the output, like a new API key.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from api.cli_help import iso_time
from vault.audit.events import Actor
from vault.context import VaultContext
from vault.recipients import acks, registry
from vault.recipients.delivery import Deliverer
from vault.recipients.registry import Subscription
from vault.settings import Settings

Runner = Callable[[Settings, Callable[[VaultContext], Awaitable[Any]]], Any]


def _subscriptions(values: list[str] | None) -> list[Subscription]:
    """`type[:purpose[:scope]]` each, e.g. `subject.erased:*:all`."""
    subs = []
    for value in values or []:
        parts = value.split(":")
        subs.append(Subscription(*parts[:3]))
    return subs


def _print(info: registry.RecipientInfo) -> None:
    state = "paused" if info.paused_at else "active"
    subs = ",".join(f"{s.event_type}:{s.purpose}:{s.scope}" for s in info.subscriptions)
    print(f"{info.name}\t{info.kind}\t{info.transport}\t{info.target}\t{state}\t{subs}")


def _record(info: registry.RecipientInfo) -> dict[str, Any]:
    """One recipient for `--json` (never its signing secret)."""
    return {
        "name": info.name,
        "kind": info.kind,
        "transport": info.transport,
        "target": info.target,
        "paused_at": info.paused_at.isoformat() if info.paused_at else None,
        "subscriptions": [
            {"type": s.event_type, "purpose": s.purpose, "scope": s.scope}
            for s in info.subscriptions
        ],
    }


def add_parser(sub: Any, run: Runner, admin: Callable[[], Actor]) -> None:
    """Add `recipients` and its commands to the `tresor` parser."""

    def create(settings: Settings, args: argparse.Namespace) -> int:
        info, secret = run(
            settings,
            lambda ctx: registry.create_recipient(
                ctx,
                admin(),
                name=args.name,
                kind=args.kind,
                transport=args.transport,
                target=args.target,
                subscriptions=_subscriptions(args.subscribe),
            ),
        )
        _print(info)
        if secret is not None:
            print("signing secret (shown once; give it to the receiver's secret store):")
            print(secret)
        return 0

    def list_(settings: Settings, args: argparse.Namespace) -> int:
        found = run(settings, registry.list_recipients)
        if args.json:
            print(json.dumps([_record(info) for info in found]))
            return 0
        for info in found:
            _print(info)
        return 0

    def subscribe(settings: Settings, args: argparse.Namespace) -> int:
        subs = _subscriptions(args.subscribe)
        _print(run(settings, lambda ctx: registry.set_subscriptions(ctx, admin(), args.name, subs)))
        return 0

    def pause(settings: Settings, args: argparse.Namespace) -> int:
        paused = args.recipients == "pause"
        _print(run(settings, lambda ctx: registry.set_paused(ctx, admin(), args.name, paused)))
        return 0

    def rotate(settings: Settings, args: argparse.Namespace) -> int:
        overlap = timedelta(hours=args.overlap_hours)
        secret = run(
            settings, lambda ctx: registry.rotate_secret(ctx, admin(), args.name, overlap=overlap)
        )
        print(f"new signing secret; the previous one signs too for {args.overlap_hours} h:")
        print(secret)
        return 0

    def deliveries(settings: Settings, args: argparse.Namespace) -> int:
        counts, items = run(settings, lambda ctx: acks.deliveries_of(ctx, admin(), args.name))
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        for n in items:
            print(
                f"{n.id}\t{n.event_type}\t{n.subject_id}\t{n.status}\t{n.attempts}\t"
                f"{n.last_error or '-'}\t{n.ack_outcome or '-'}"
            )
        return 0

    def replay(settings: Settings, args: argparse.Namespace) -> int:
        since = args.since  # parsed by `iso_time`: UTC when it names no offset
        count = run(settings, lambda ctx: acks.replay(ctx, admin(), args.name, since))
        print(f"queued {count} notices again")
        return 0

    def deliver(settings: Settings, args: argparse.Namespace) -> int:
        async def job(ctx: VaultContext) -> Any:
            deliverer = Deliverer(ctx)
            try:
                return await deliverer.run()
            finally:
                await deliverer.close()

        report = run(settings, job)
        print(
            f"fanned out {report.fanned_out} events; delivered {report.delivered}, "
            f"retrying {report.retried}, failed {report.failed}"
        )
        return 0

    r = sub.add_parser("recipients", help="recipients of notices").add_subparsers(
        dest="recipients", required=True
    )
    s = r.add_parser("create", help="register a recipient (prints a webhook's secret last)")
    s.add_argument("name")
    s.add_argument("--kind", choices=registry.KINDS, default="client")
    s.add_argument("--transport", choices=registry.TRANSPORTS, default="webhook")
    s.add_argument("--target", required=True, help="webhook URL or NATS subject prefix")
    s.add_argument(
        "--subscribe", action="append", help="type[:purpose[:scope]]; default: every type"
    )
    s.set_defaults(func=create)
    s = r.add_parser("list", help="list recipients")
    s.add_argument("--json", action="store_true", help="print one JSON array")
    s.set_defaults(func=list_)
    s = r.add_parser("subscribe", help="replace a recipient's subscriptions")
    s.add_argument("name")
    s.add_argument("--subscribe", action="append", required=True, help="type[:purpose[:scope]]")
    s.set_defaults(func=subscribe)
    for action in ("pause", "resume"):
        s = r.add_parser(action, help=f"{action} a recipient's deliveries")
        s.add_argument("name")
        s.set_defaults(func=pause)
    s = r.add_parser("rotate-secret", help="new signing secret (printed last)")
    s.add_argument("name")
    s.add_argument("--overlap-hours", type=int, default=24)
    s.set_defaults(func=rotate)
    s = r.add_parser("deliveries", help="a recipient's deliveries")
    s.add_argument("name")
    s.set_defaults(func=deliveries)
    s = r.add_parser("replay", help="send a recipient's notices since a time again")
    s.add_argument("name")
    s.add_argument(
        "--since", required=True, type=iso_time, help="ISO time, e.g. 2026-12-01T00:00 (UTC)"
    )
    s.set_defaults(func=replay)
    s = r.add_parser("deliver", help="fan out and deliver what is due now, once")
    s.set_defaults(func=deliver)
