"""Helpers for the privacy, problem and fail-closed tests: canary contact data, row counts,
problem+json assertions, audit rows and raw database contents."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from vault.context import VaultContext
from vault.storage.audit_tables import audit_events
from vault.storage.tables import clients, consent_history, consents, subjects

PROBLEM = "application/problem+json"

#: Contact data whose every trace is searched for: none may appear outside the ciphertexts.
CANARY = {
    "email": "canary.zx81q@example.org",
    "phone": "+49 30 98765432",
    "name": "Kanarienvogel Zx81q",
    "postal_address": {
        "street": "Canarystraße 77",
        "postal_code": "10115",
        "city": "Berlin",
        "country": "DE",
    },
    "external_ref": "CANARY-ZX81Q",
}
CANARY_IP = "198.51.100.77"
CANARY_AGENT = "CanaryAgent/9.9"

#: Distinctive substrings of every canary value, in the spellings they may take on the way.
CANARY_NEEDLES: tuple[str, ...] = (
    "canary.zx81q@example.org",
    "canary.zx81q",
    "+49 30 98765432",
    "+493098765432",
    "3098765432",
    "030 98765432",
    "98765432",
    "Kanarienvogel Zx81q",
    "Kanarienvogel",
    "Canarystraße 77",
    "Canarystrasse",
    "Canarystra",
    "CANARY-ZX81Q",
    "zx81q",
    CANARY_IP,
    CANARY_AGENT,
    "CanaryAgent",
)


def canary_forms(needles: Iterable[str] = CANARY_NEEDLES) -> set[str]:
    """Each needle as typed, lower- and upper-cased, plus JSON-escaped forms of non-ASCII."""
    forms: set[str] = set()
    for needle in needles:
        for variant in (needle, needle.lower(), needle.upper()):
            forms.add(variant)
            forms.add(variant.encode("ascii", "backslashreplace").decode())  # \xdf
            forms.add(
                "".join(ch if ord(ch) < 128 else f"\\u{ord(ch):04x}" for ch in variant)
            )  # JSON \u00df
    return forms


def found_canaries(haystack: str | bytes, needles: Iterable[str] = CANARY_NEEDLES) -> list[str]:
    """Every canary form that occurs in `haystack` (case-insensitively), for assertion messages."""
    if isinstance(haystack, bytes):
        lowered_bytes = haystack.lower()
        hits = []
        for form in sorted(canary_forms(needles)):
            for encoding in ("utf-8", "latin-1", "utf-16-le"):
                try:
                    encoded = form.lower().encode(encoding)
                except UnicodeEncodeError:
                    continue
                if encoded in lowered_bytes:
                    hits.append(f"{form} ({encoding})")
                    break
        return hits
    lowered = haystack.lower()
    return sorted(form for form in canary_forms(needles) if form.lower() in lowered)


async def row_counts(vault: VaultContext) -> dict[str, int]:
    """Rows in the tables a bad request must never touch."""
    out: dict[str, int] = {}
    async with vault.engine.connect() as conn:
        for table in (subjects, consents, consent_history, clients):
            out[table.name] = (
                await conn.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return out


async def audit_rows(vault: VaultContext) -> list[dict[str, Any]]:
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()
    return [dict(r._mapping) for r in rows]


async def consent_statuses(vault: VaultContext) -> dict[str, str]:
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(select(consents.c.id, consents.c.status))).all()
    return {r.id: r.status for r in rows}


def assert_problem(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with the core members; returns its body."""
    assert response.headers["content-type"].startswith(PROBLEM), (
        response.status_code,
        response.headers.get("content-type"),
        response.text,
    )
    body = response.json()
    for member in ("type", "title", "status", "detail"):
        assert member in body, f"problem lacks {member}: {body}"
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:tresor:problem:"), body  # one error shape (issue 20)
    assert isinstance(body["detail"], str) and body["detail"]
    if status is not None:
        assert response.status_code == status, response.text
    return body


def is_sqlite(vault: VaultContext) -> bool:
    return vault.settings.effective_database_url.startswith("sqlite")


async def execute_ddl(vault: VaultContext, *statements: str) -> None:
    async with vault.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def raw_database_bytes(vault: VaultContext) -> bytes:
    """Everything the database holds at rest: the SQLite file plus its WAL, or a pg_dump."""
    url = make_url(vault.settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        # Pooled connections hold the WAL open; dispose them so a checkpoint can run.
        await vault.engine.dispose()

        def _checkpoint() -> None:
            conn = sqlite3.connect(path)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

        await asyncio.to_thread(_checkpoint)
        data = path.read_bytes()
        for suffix in ("-wal", "-journal"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                data += extra.read_bytes()
        return data
    return await asyncio.to_thread(pg_dump, vault.settings.effective_database_url)


def pg_dump(database_url: str) -> bytes:
    """A plain-text dump of the database (schema and data) via the pg_dump binary."""
    url = make_url(database_url)
    binary = shutil.which("pg_dump") or "/usr/bin/pg_dump"
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    result = subprocess.run(
        [
            binary,
            "--host",
            url.host or "127.0.0.1",
            "--port",
            str(url.port or 5432),
            "--username",
            url.username or "postgres",
            "--no-password",
            "--dbname",
            url.database or "",
        ],
        capture_output=True,
        check=True,
        env=env,
        timeout=60,
    )
    assert b"CREATE TABLE" in result.stdout
    return result.stdout
