"""The policy files as text: one reader, one TOML parser, one error that names file and line.

Each catalogue (`purposes.toml`, `touchpoints.toml`, `contact-pressure.toml`) is read and
parsed here and validated by its own module. Whatever is wrong stops the start with a
`PolicyError` whose message begins with the file and, where it can be found, the line
(`<file>: line <n>: <what>`). TOML parsers keep no positions, so the line is searched for
in the text: the line of an entry's `id`, of a table's header, or of a key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any


class PolicyError(Exception):
    """A policy file is unreadable, not TOML, or breaks a rule; the message names where."""


def read_file(policies_dir: Path, name: str, what: str) -> tuple[str, str]:
    """The text of `policies_dir/name` and the path that error messages name."""
    path = policies_dir / name
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read {what}: {exc.strerror}") from exc


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document; a syntax error names the file (tomllib names line and column)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc


def line_of(text: str, pattern: str, start: int = 1, end: int | None = None) -> int | None:
    """The first line number (1-based) in [start, end) where the regex `pattern` matches
    (searched, so anchor it with `^` where needed), or None."""
    rx = re.compile(pattern)
    lines = text.splitlines()
    stop = len(lines) + 1 if end is None else end
    for n in range(start, stop):
        if rx.search(lines[n - 1]):
            return n
    return None


def table_line(text: str, table: str, index: int, entry_id: str | None) -> int:
    """Best-effort line of the `index`-th `[[table]]`: its `id = "<entry_id>"` line, else
    its header (line 1 without one). The search stays inside that table, so a duplicate id
    points at the duplicate."""
    lines = text.splitlines()
    headers = [n for n, line in enumerate(lines, 1) if line.strip() == f"[[{table}]]"]
    start, end = 1, len(lines) + 1
    if index < len(headers):
        start = headers[index]
        end = headers[index + 1] if index + 1 < len(headers) else end
    if entry_id:
        found = line_of(text, r"^\s*id\s*=\s*[\"']" + re.escape(entry_id) + r"[\"']", start, end)
        if found is not None:
            return found
    return start
