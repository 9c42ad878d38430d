"""What every `tresor` subcommand module shares: the actor the CLI acts as on the audit trail,
running one vault job to completion, and the `--nice` flag of long-running commands. Its
own module so that `api.cli` and the subcommand modules (`api.cli_clients`, …) import it
at the top, not each other."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from typing import Any

from vault.audit.events import Actor
from vault.context import VaultContext
from vault.settings import Settings


def admin_actor() -> Actor:
    """The operator at the terminal, as the audit trail names them (`cli@<user>`)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not a reason to refuse
        user = "unknown"
    return Actor("admin", f"cli@{user}")


def run_with_vault(settings: Settings, job: Callable[[VaultContext], Awaitable[Any]]) -> Any:
    """Open the vault, run `job` on it, close it, and return what the job returned."""

    async def main() -> Any:
        ctx = VaultContext.open(settings)
        try:
            return await job(ctx)
        finally:
            await ctx.close()

    return asyncio.run(main())


class UsageError(Exception):
    """A bad argument found after parsing (a reversed time range, an unknown revision, an
    unreadable key file): `tresor` prints it as one `error:` line and exits with 2, like
    argparse does for the arguments it checks itself."""


def yield_cpu(args: argparse.Namespace) -> None:
    """Run this process (and the workers it starts, which inherit it) at the lower CPU
    priority `--nice` asks for, so on a shared machine the server's lookups are scheduled
    first; the database's own processes are not affected (see `--no-pace` for those)."""
    if args.nice > 0:
        os.nice(args.nice)


def nice_flag(s: argparse.ArgumentParser) -> None:
    """`--nice` (default 10) on a long-running command (rotate, retention, the audit trail's
    archive, prune, verify and export): the same flag with the same meaning everywhere."""
    s.add_argument(
        "--nice",
        type=int,
        default=10,
        help="lower this process's CPU priority by this much (os.nice) so lookups served on "
        "the same machine come first; 0 keeps it (default: 10)",
    )
