"""Realistic German test data (Faker de_DE) and small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from faker import Faker

from api.app import create_app
from vault.admin.clients import create_client
from vault.audit.events import Actor
from vault.context import VaultContext

fake = Faker("de_DE")
ADMIN = Actor("admin", "tests")
WRITER = Actor("client", "crm")
NEWSLETTER_EVIDENCE = {
    "touchpoint": "web.newsletter_form",
    "method": "web_form",
    "notice_version": "2026-10",
    "language": "de",
}


def person(seed: int | None = None) -> dict[str, Any]:
    """A plausible German customer with every contact field filled."""
    f = Faker("de_DE")
    if seed is not None:
        f.seed_instance(seed)
    return {
        "email": f.unique.email(),
        "phone": f"+4930{f.unique.random_number(digits=7, fix_len=True)}",
        "name": f.name(),
        "postal_address": {
            "street": f.street_address(),
            "postal_code": f.postcode(),
            "city": f.city(),
            "country": "DE",
        },
        "external_ref": f"K-{f.unique.random_number(digits=8, fix_len=True)}",
    }


async def client_key(
    vault: VaultContext, name: str, role: str, purposes: list[str] | None = None
) -> str:
    _, key = await create_client(vault, ADMIN, name, role, purposes or [])
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def api(vault: VaultContext) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client against the app wired to this test's vault.

    The app runs on the test's own event loop (the database pool is bound to it), so the
    start-up hooks are run here rather than through a lifespan in another thread.
    """
    app = create_app(vault=vault, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver.local"
        ) as client:
            yield client
    finally:
        for hook in app.on_shutdown:
            await hook(app)


def outbox_links(outbox: Path) -> list[str]:
    """Confirmation tokens from the .eml files in the outbox, oldest first."""
    import email
    import email.policy
    import re

    tokens = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = msg.get_body(("plain",)).get_content()  # the text part; the HTML repeats it
        tokens += re.findall(r"/confirm/([A-Za-z0-9_-]+)", body)
    return tokens


async def contact_if_match(vault: VaultContext, subject_id: str) -> dict[str, str]:
    """`If-Match` naming the subject's stored contact state, as a client would have it from
    its last lookup (tests read the write counter instead of looking the subject up)."""
    from sqlalchemy import select

    from vault.storage.tables import subjects

    async with vault.engine.connect() as conn:
        revision = (
            await conn.execute(
                select(subjects.c.contact_revision).where(subjects.c.id == subject_id)
            )
        ).scalar_one()
    return {"If-Match": f'"contact-r{revision}"'}
