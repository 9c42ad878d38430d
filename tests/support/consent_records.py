"""The consents and helpers the consent tests (tests/vault/bases/test_consent*.py) share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER, person
from vault.audit.events import Actor
from vault.bases.consents import Evidence, list_bases
from vault.subjects.store import create_subject

NEWS = Evidence(**NEWSLETTER_EVIDENCE)
EXPLICIT = Evidence(
    touchpoint="hotline.inbound",
    method="recorded_call",
    notice_version="2026-10",
    language="de",
    explicit=True,
)
SUBJECT = Actor("subject", "confirmation-link")
IP = "203.0.113.77"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) TresorTestBrowser/9.1"


async def new_subject(vault, seed: int = 1, **overrides: Any) -> str:
    return await create_subject(vault, WRITER, {**person(seed), **overrides})


async def table_rows(vault, table, *order) -> list[Any]:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(table).order_by(*order))).all()


async def basis_record(vault, sid: str, consent_id: str):
    (record,) = await list_bases(vault, WRITER, sid, consent_id=consent_id)
    return record
