"""Helpers for the data-subject rights tests: subjects with typical bases, raw rows, actors,
lookups and plaintext scans of audit events and histories."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER, outbox_links, person
from vault.access import lookup as lookup_mod
from vault.audit.events import Actor
from vault.bases.consents import Evidence, confirm, record_basis
from vault.bases.ending import EndedBasis
from vault.context import VaultContext
from vault.outreach.basket import ContactSpec
from vault.rights.erasure import ErasureResult, erase_in
from vault.rights.restriction import object_in
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import dsar_request_history, dsar_requests, retained_fields
from vault.storage.tables import consent_history, consents, subjects
from vault.subjects.store import create_subject, load_subject

DPO = Actor("dpo", "dpo-anna")
SELF = Actor("subject", "self-service")
NEWS = Evidence(**NEWSLETTER_EVIDENCE)
WEB_IP = "198.51.100.23"
WEB_UA = "Mozilla/5.0 (X11; Linux x86_64) DsarTestBrowser/1.0"
NEWS_WITH_SECRETS = Evidence(**NEWSLETTER_EVIDENCE, ip=WEB_IP, user_agent=WEB_UA)
EXPLICIT = Evidence(
    touchpoint="hotline.inbound",
    method="recorded_call",
    notice_version="2026-10",
    language="de",
    explicit=True,
)
ALL_PURPOSES = frozenset(
    {
        "account.service",
        "order.delivery",
        "invoice.postal",
        "newsletter.email",
        "offers.email",
        "offers.sms",
        "offers.phone",
        "incident.notice",
    }
)
SHOP = Actor("client", "shop")


async def new_subject(
    vault: VaultContext, seed: int, **overrides: Any
) -> tuple[str, dict[str, Any]]:
    data = {**person(seed), **overrides}
    data = {k: v for k, v in data.items() if v is not None}
    return await create_subject(vault, WRITER, data), data


async def contract(vault: VaultContext, sid: str, purpose: str = "order.delivery", **kw: Any):
    return await record_basis(vault, WRITER, sid, purpose, reference="order 4711", **kw)


async def invoice(vault: VaultContext, sid: str, **kw: Any):
    return await record_basis(
        vault, WRITER, sid, "invoice.postal", reference="invoice 2026-17", **kw
    )


async def newsletter(vault: VaultContext, sid: str, evidence: Evidence = NEWS):
    """A confirmed newsletter consent (double opt-in through the outbox)."""
    record = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=evidence)
    token = outbox_links(vault.settings.outbox_dir)[-1]
    return await confirm(vault, token, Actor("subject", "confirmation-link")) if token else record


async def sms_offers(vault: VaultContext, sid: str):
    return await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)


async def rows(vault: VaultContext, table: Any, *where: Any, order: Any = None) -> list[Any]:
    stmt = select(table)
    for w in where:
        stmt = stmt.where(w)
    if order is not None:
        stmt = stmt.order_by(order)
    async with vault.engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def subject_row(vault: VaultContext, sid: str) -> Any:
    (row,) = await rows(vault, subjects, subjects.c.id == sid)
    return row


async def consent_rows(vault: VaultContext, sid: str) -> list[Any]:
    return await rows(vault, consents, consents.c.subject_id == sid, order=consents.c.created_at)


async def retained_rows(vault: VaultContext, sid: str) -> list[Any]:
    return await rows(vault, retained_fields, retained_fields.c.subject_id == sid)


async def actions(vault: VaultContext) -> list[str]:
    return [r.action for r in await rows(vault, audit_events, order=audit_events.c.seq)]


async def look(
    vault: VaultContext, purpose: str, kind: str, identifier: str, actor: Actor = SHOP
) -> Any:
    """A lookup; for a marketing purpose it announces a tresor contact, as it must."""
    known = vault.catalogue.get(purpose)
    return await lookup_mod.lookup(
        vault,
        actor,
        ALL_PURPOSES,
        purpose_id=purpose,
        identifier_kind=kind,
        identifier=identifier,
        contact=ContactSpec(brand="tresor") if known and known.needs_contact else None,
    )


def _text_of(row: Any) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.hex()
        return str(value)

    return json.dumps(dict(row._mapping), default=default, ensure_ascii=False)


async def trail_text(vault: VaultContext) -> str:
    """Every audit event and every consent / request history row, as one text to search."""
    parts = []
    for table in (audit_events, consent_history, dsar_request_history):
        parts += [_text_of(r) for r in await rows(vault, table)]
    # The request rows themselves, minus the sealed payload.
    for r in await rows(vault, dsar_requests):
        mapping = dict(r._mapping)
        mapping.pop("payload_ct")
        parts.append(json.dumps(mapping, default=str, ensure_ascii=False))
    return "\n".join(parts)


def plaintext_values(data: dict[str, Any]) -> list[str]:
    """The searchable plaintext forms of a person's contact data."""
    out = []
    for key, value in data.items():
        if key == "postal_address":
            out += [value["street"], value["city"]]
        elif key == "email":
            out += [value, value.lower()]
        else:
            out.append(value)
    return [v for v in out if v and len(v) >= 5]


async def erase(vault: VaultContext, actor: Actor, subject_id: str) -> ErasureResult:
    """Erase a subject at once: `erase_in` on its locked row in a transaction of its own,
    the step the request workflow, the privacy centre and the retention sweep each run
    inside theirs (and the DEK forgotten again after the commit, as they do). `NotFound`
    for an unknown subject, `Conflict` for one already erased."""
    now = vault.clock.now()
    async with vault.transaction() as conn:
        row = await load_subject(conn, subject_id, for_update=True)
        result = await erase_in(vault, conn, actor, row, now)
    vault.deks.forget(subject_id)
    return result


async def object_to_marketing(
    vault: VaultContext, actor: Actor, subject_id: str
) -> list[EndedBasis]:
    """The subject objects to direct marketing at once: `object_in` on its locked row in a
    transaction of its own, as an approved objection request runs it."""
    now = vault.clock.now()
    async with vault.transaction() as conn:
        row = await load_subject(conn, subject_id, for_update=True)
        return await object_in(vault, conn, actor, row, now)
