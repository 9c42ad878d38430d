"""`tresor db upgrade | current | history`: the schema's migrations (Alembic) as the
operator sees them. An unknown revision is a usage error (exit 2), not a traceback; a
database that does not answer is one line naming where it was looked for (exit 1), like
every other command when storage is down."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from api.cli_support import UsageError
from api.serving import describe_db
from vault.errors import Unavailable
from vault.settings import Settings
from vault.storage.db import alembic_config, make_engine
from vault.storage.errors import STORAGE_ERRORS


def _ensure_data_dir(settings: Settings) -> None:
    if not settings.database_url:
        # The embedded SQLite file lives in the data dir, which may not exist yet.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def _scripts(settings: Settings) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(settings.effective_database_url))


def _unavailable(settings: Settings) -> Unavailable:
    """The one line for a database that does not answer: where (never the password), and
    that nothing happened; the driver's own error (`ConnectionRefusedError: ...`) names
    neither."""
    return Unavailable(f"storage is unavailable at {describe_db(settings)}; nothing was changed")


async def _probe(settings: Settings) -> None:
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        async with engine.connect():
            pass
    finally:
        await engine.dispose()


def _require_storage(settings: Settings) -> None:
    """Connect once before migrating, so an unreachable database is told apart from a
    migration that fails on a reachable one (which keeps its own error)."""
    try:
        asyncio.run(_probe(settings))
    except STORAGE_ERRORS:
        raise _unavailable(settings) from None


def cmd_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if not args.revision.startswith(("+", "-")) and "@" not in args.revision:
            # before touching the database: an unknown revision changes nothing
            _scripts(settings).get_revisions(args.revision)
        _ensure_data_dir(settings)
        _require_storage(settings)
        command.upgrade(alembic_config(settings.effective_database_url), args.revision)
    except (CommandError, RevisionError) as exc:
        raise UsageError(f"{exc} (see `tresor db history`)") from None
    print(f"database: {describe_db(settings)} (migrated to {args.revision})")
    return 0


async def _current(settings: Settings) -> tuple[str, ...]:
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            heads = await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_heads()
            )
    finally:
        await engine.dispose()
    return tuple(heads)


def cmd_current(settings: Settings, args: argparse.Namespace) -> int:
    _ensure_data_dir(settings)
    try:
        current = asyncio.run(_current(settings))
    except STORAGE_ERRORS:
        raise _unavailable(settings) from None
    head = _scripts(settings).get_current_head()
    if args.json:
        print(json.dumps({"current": list(current), "head": head, "at_head": current == (head,)}))
        return 0
    where = describe_db(settings)
    if not current:
        print(f"{where}: no migration applied (head is {head}; run `tresor db upgrade`)")
    else:
        state = "at head" if current == (head,) else f"head is {head}: run `tresor db upgrade`"
        print(f"{where}: {', '.join(current)} ({state})")
    return 0


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    revisions: list[dict[str, Any]] = [
        {"revision": r.revision, "down_revision": r.down_revision, "message": r.doc}
        for r in reversed(list(_scripts(settings).walk_revisions()))
    ]
    if args.json:
        print(json.dumps(revisions))
        return 0
    for r in revisions:
        print(f"{r['down_revision'] or '<base>'} -> {r['revision']}: {r['message']}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    """The `db` command and its subcommands."""
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    s = db.add_parser("upgrade", help="apply Alembic migrations up to a revision")
    s.add_argument("revision", nargs="?", default="head", help="revision id or `head`")
    s.set_defaults(func=cmd_upgrade)
    s = db.add_parser("current", help="the revision the database is at, and the newest one")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_current)
    s = db.add_parser("history", help="every migration, oldest first (no database needed)")
    s.add_argument("--json", action="store_true", help="print one JSON array")
    s.set_defaults(func=cmd_history)
