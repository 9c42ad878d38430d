"""What `api/` may not do itself (issue 14): it holds no SQL and writes no audit events;
the owning vault area's function does both, so a page or a route cannot skip the event."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "api"

#: Imports that mean SQL or a hand-written audit event. `tresor serve` only parses a
#: database URL with SQLAlchemy's `make_url`, which runs no statement.
FORBIDDEN_MODULES = ("sqlalchemy", "vault.storage.tables")
ALLOWED = {("serving.py", "sqlalchemy.engine")}
AUDIT_WRITERS = {"record", "record_row", "record_records", "event_row"}


def _offences(path: Path, root: Path = API) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    name = str(path.relative_to(root))
    found = []
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            if node.module == "vault.audit.events":
                found += [
                    f"{name}: imports {a.name}" for a in node.names if a.name in AUDIT_WRITERS
                ]
        for module in modules:
            if module.startswith(FORBIDDEN_MODULES) and (name, module) not in ALLOWED:
                found.append(f"{name}: imports {module}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in AUDIT_WRITERS
            and isinstance(node.value, ast.Name)
            and node.value.id == "audit"
        ):
            found.append(f"{name}:{node.lineno}: audit.{node.attr}")
    return found


def test_api_holds_no_sql_and_writes_no_audit_event():
    """No module under api/ imports SQLAlchemy or the tables, or calls the audit trail's
    writers (`audit.record`, `record_row`, `event_row`, ...)."""
    offences = [o for path in sorted(API.rglob("*.py")) for o in _offences(path)]
    assert offences == []


def test_the_check_sees_a_controller_that_writes_sql_and_an_event(tmp_path):
    """The check above would catch the console's former `select(clients...)` and its
    `audit.record(...)` calls."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from sqlalchemy import select\nfrom vault.audit import events as audit\n"
        "async def f(conn):\n    await audit.record(conn)\n"
    )
    assert _offences(bad, tmp_path) == ["bad.py: imports sqlalchemy", "bad.py:4: audit.record"]
