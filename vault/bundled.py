"""Where the files Tresor ships (Alembic migrations, default policies) are found: in an
installed wheel or in the repository checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled(name: str) -> Path:
    """`migrations` or `policies` as Tresor ships them: the copy an installed wheel carries
    in `vault/_bundled/` (setup.py puts it there), else the repository's top-level one."""
    shipped = _PACKAGE / "_bundled" / name
    return shipped if shipped.is_dir() else _PACKAGE.parent / name


def default_policies_dir() -> Path:
    """`./policies` when the working directory has one (as before), else the default
    policies that ship with Tresor, so an installed wheel serves without a checkout."""
    local = Path("./policies")
    return local if local.is_dir() else bundled("policies")
