"""How `tresor` talks to the person at the terminal: a parser whose mistakes are one
`error:` line (exit 2) instead of a usage block, `--version`, and help that shows every
subcommand's description, the defaults and the TRESOR_* variables the command reads.

The descriptions, defaults and variables are filled in after `api.cli.build_parser` has
built the tree, so a new subcommand gets them without repeating itself.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, NoReturn

from vault.settings import Settings

#: Variable → (Settings field whose default the help shows, what it sets).
VARIABLES: dict[str, tuple[str, str]] = {
    "TRESOR_DATA_DIR": ("data_dir", "SQLite file, keyring and mail outbox"),
    "TRESOR_DATABASE_URL": ("database_url", "SQLAlchemy async URL; empty: SQLite in the data dir"),
    "TRESOR_POLICIES": ("policies_dir", "purposes, touchpoints and contact-pressure rules"),
    "TRESOR_KEK_PROVIDER": ("kek_provider", "local (keyring file) or pkcs11"),
    "TRESOR_PKCS11_MODULE": ("pkcs11_module", "the HSM's PKCS#11 library"),
    "TRESOR_PKCS11_TOKEN": ("pkcs11_token", "label of the token holding the KEKs"),
    "TRESOR_PKCS11_PIN_FILE": ("pkcs11_pin_file", "file holding the token's user PIN"),
    "TRESOR_HOST": ("host", "address `serve` listens on"),
    "TRESOR_PORT": ("port", "port `serve` listens on"),
    "TRESOR_PUBLIC_URL": ("public_url", "base URL in mail links; unset: where serve listens"),
    "TRESOR_SMTP_URL": ("smtp_url", "smtp://user:pass@host:port; empty: .eml files in the outbox"),
    "TRESOR_SMTP_TLS": ("smtp_tls", "starttls (required), tls or none"),
    "TRESOR_MAIL_FROM": ("mail_from", "sender of the vault's mails"),
    "TRESOR_LOG_LEVEL": ("log_level", "minimum level of the JSON logs"),
    "TRESOR_TRUSTED_PROXIES": ("trusted_proxies", "proxies whose Forwarded headers count"),
    "TRESOR_DB_POOL_SIZE": ("db_pool_size", "database connections per process"),
    "TRESOR_SEAL_INTERVAL": ("seal_interval", "seconds between audit sealer runs"),
    "TRESOR_RETENTION_INTERVAL": ("retention_interval", "seconds between retention sweeps"),
    "TRESOR_NOTIFY_INTERVAL": ("notify_interval", "seconds between delivery runs"),
    "TRESOR_OUTBOX_HOURS": ("outbox_hours", "hours the file outbox keeps a mail"),
    "TRESOR_AUDIT_CHECKPOINT_FILE": (
        "checkpoint_file",
        "checkpoint file outside the database (empty: in the data dir)",
    ),
    "TRESOR_NATS_URL": ("nats_url", "NATS server of recipients using nats"),
}

_VAULT = ("TRESOR_DATA_DIR", "TRESOR_DATABASE_URL", "TRESOR_POLICIES", "TRESOR_KEK_PROVIDER")
_PKCS11 = ("TRESOR_PKCS11_MODULE", "TRESOR_PKCS11_TOKEN", "TRESOR_PKCS11_PIN_FILE")
_JOBS = ("TRESOR_SEAL_INTERVAL", "TRESOR_RETENTION_INTERVAL", "TRESOR_NOTIFY_INTERVAL")
#: The variables each command reads, by the longest matching command path.
COMMAND_VARIABLES: dict[str, tuple[str, ...]] = {
    "tresor": _VAULT,
    "tresor init": _VAULT,
    "tresor serve": (
        *_VAULT,
        "TRESOR_HOST",
        "TRESOR_PORT",
        "TRESOR_PUBLIC_URL",
        "TRESOR_SMTP_URL",
        "TRESOR_SMTP_TLS",
        "TRESOR_MAIL_FROM",
        "TRESOR_LOG_LEVEL",
        "TRESOR_TRUSTED_PROXIES",
        "TRESOR_DB_POOL_SIZE",
        *_JOBS,
    ),
    "tresor jobs": (*_VAULT, "TRESOR_LOG_LEVEL", *_JOBS),
    "tresor db": ("TRESOR_DATA_DIR", "TRESOR_DATABASE_URL"),
    "tresor openapi": (),
    "tresor keys": (*_VAULT, *_PKCS11),
    "tresor audit": (*_VAULT, "TRESOR_AUDIT_CHECKPOINT_FILE"),
    "tresor retention": (*_VAULT, "TRESOR_OUTBOX_HOURS"),
    "tresor recipients": (*_VAULT, "TRESOR_NATS_URL"),
}


def version() -> str:
    """The installed distribution's version: the one version string there is."""
    try:
        return metadata.version("tresor")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown (not installed)"


class TresorParser(argparse.ArgumentParser):
    """An argument mistake is one line on stderr, exit 2: the usage block argparse prints
    first pushes the actual error out of a narrow terminal and out of `2>&1 | tail -1`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _shows_default(action: argparse.Action) -> bool:
    return action.default not in (None, False, [], argparse.SUPPRESS) and bool(
        action.option_strings or action.nargs in ("?", "*")
    )


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Every option with a default shows it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if _shows_default(action) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text.strip()


def iso_time(value: str) -> datetime:
    """An argparse type: an ISO 8601 date or time, UTC when it names no offset."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "not an ISO 8601 date or time, e.g. 2026-01-31 or 2026-01-31T12:00+01:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _environment(prog: str) -> str:
    key = max((k for k in COMMAND_VARIABLES if prog == k or prog.startswith(k + " ")), key=len)
    names = COMMAND_VARIABLES[key]
    if not names:
        return ""
    defaults = Settings()
    lines = ["environment (read when the command runs):"]
    for name in names:
        field, what = VARIABLES[name]
        value = getattr(defaults, field, None)
        shown = f"default {value}" if value not in (None, "", ()) else "default empty"
        lines.append(f"  {name:<29} {what} ({shown})")
    return "\n".join(lines)


def finish(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every parser of the tree a description (its help line), defaults in the option
    help and the variables it reads as epilog; add `--version` to the top."""
    parser.add_argument("--version", action="version", version=f"tresor {version()}")
    _finish(parser, parser.description)
    return parser


def _finish(parser: argparse.ArgumentParser, description: str | None) -> None:
    parser.formatter_class = _Formatter
    if not parser.description and description:
        parser.description = description[0].upper() + description[1:] + "."
    if parser.epilog is None:
        parser.epilog = _environment(parser.prog) or None
    for action in parser._actions:
        if action.help is None and _shows_default(action):
            action.help = "(default: %(default)s)"  # argparse omits an empty help line
        if isinstance(action, argparse._SubParsersAction):
            helps: dict[str, Any] = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                _finish(child, helps.get(name))
