"""Subjects and their contact data: create, rectify, and decrypt for an allowed purpose.

A subject row carries its wrapped DEK, one ciphertext per field and blind-index digests for
the identifying fields. Plaintext exists only in memory, between decrypt and response.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vault import audit
from vault.audit import Actor, AuditAction, Decision
from vault.contact import (
    CONTACT_FIELDS,
    ContactValidationError,
    normalise_email,
    normalise_external_ref,
    normalise_name,
    normalise_phone,
    normalise_postal_address,
)
from vault.context import VaultContext
from vault.crypto import open_field, seal_field
from vault.errors import Conflict, InvalidInput, NotFound, Unavailable
from vault.storage.tables import subjects

#: Blind-indexed identifier fields and their index columns.
INDEXED = {"email": "email_bidx", "phone": "phone_bidx", "external_ref": "external_ref_bidx"}


class SubjectStatus:
    ACTIVE = "active"
    RESTRICTED = "restricted"
    ERASED = "erased"


def normalise_contact(values: Mapping[str, Any]) -> dict[str, str | None]:
    """Validate every given field; returns field -> canonical text (None clears a field)."""
    errors: dict[str, str] = {}
    out: dict[str, str | None] = {}
    for field, raw in values.items():
        if field not in CONTACT_FIELDS:
            errors[field] = "is not a contact field"
            continue
        if raw is None:
            out[field] = None
            continue
        try:
            if field == "postal_address":
                if not isinstance(raw, Mapping):
                    raise ContactValidationError({field: "must be an object"})
                addr = normalise_postal_address(dict(raw))
                out[field] = json.dumps(addr.to_dict(), ensure_ascii=False, sort_keys=True)
            elif not isinstance(raw, str):
                raise ContactValidationError({field: "must be text"})
            elif field == "email":
                out[field] = normalise_email(raw)
            elif field == "phone":
                out[field] = normalise_phone(raw)
            elif field == "name":
                out[field] = normalise_name(raw)
            else:
                out[field] = normalise_external_ref(raw)
        except ContactValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput("contact data is invalid", errors)
    return out


def _is_external_ref_conflict(exc: Unavailable) -> bool:
    cause = exc.__cause__
    return isinstance(cause, IntegrityError) and "external_ref_bidx" in str(cause.orig)


def sealed_columns(
    ctx: VaultContext, subject_id: str, dek: Any, dek_version: int, fields: dict[str, str | None]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field, text in fields.items():
        values[f"{field}_ct"] = (
            None if text is None else seal_field(dek, subject_id, field, dek_version, text)
        )
        if field in INDEXED:
            values[INDEXED[field]] = None if text is None else ctx.indexer.digest(field, text)
    return values


async def create_subject(ctx: VaultContext, actor: Actor, data: Mapping[str, Any]) -> str:
    """Store a new subject's contact data; returns its id. Audited in the same transaction."""
    fields = {k: v for k, v in normalise_contact(data).items() if v is not None}
    if not fields:
        raise InvalidInput("at least one contact field is required", {"body": "is empty"})
    subject_id = str(uuid.uuid4())
    now = ctx.clock.now()
    dek, kek_version, wrapped = ctx.deks.new_dek(subject_id)
    row = {
        "id": subject_id,
        "status": SubjectStatus.ACTIVE,
        "kek_version": kek_version,
        "wrapped_dek": wrapped,
        "dek_version": 1,
        "created_at": now,
        "updated_at": now,
        **sealed_columns(ctx, subject_id, dek, 1, fields),
    }
    try:
        async with ctx.transaction() as conn:
            await conn.execute(insert(subjects).values(**row))
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.SUBJECT_CREATE,
                decision=Decision.ALLOW,
                subject_id=subject_id,
                fields=sorted(fields),
            )
    except Unavailable as exc:
        if _is_external_ref_conflict(exc):
            raise Conflict("a subject with this external_ref already exists") from None
        raise
    return subject_id


async def load_subject(conn: AsyncConnection, subject_id: str, *, for_update: bool = False) -> Row:
    stmt = select(subjects).where(subjects.c.id == subject_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound("no such subject")
    return row


async def rectify_contact(
    ctx: VaultContext, actor: Actor, subject_id: str, changes: Mapping[str, Any]
) -> list[str]:
    """Replace (or clear, with None) the given fields; returns the changed field names."""
    fields = normalise_contact(changes)
    if not fields:
        raise InvalidInput("no field to change", {"body": "is empty"})
    now = ctx.clock.now()
    try:
        async with ctx.transaction() as conn:
            row = await load_subject(conn, subject_id, for_update=True)
            if row.status == SubjectStatus.ERASED:
                raise Conflict("the subject was erased")
            dek = ctx.deks.dek(subject_id, row.kek_version, row.wrapped_dek)
            values = sealed_columns(ctx, subject_id, dek, row.dek_version, fields)
            await conn.execute(
                update(subjects)
                .where(subjects.c.id == subject_id)
                .values(updated_at=now, **values)
            )
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.CONTACT_RECTIFY,
                decision=Decision.ALLOW,
                subject_id=subject_id,
                fields=sorted(fields),
            )
    except Unavailable as exc:
        if _is_external_ref_conflict(exc):
            raise Conflict("a subject with this external_ref already exists") from None
        raise
    return sorted(fields)


class RowView:
    """Attribute access over a row that indexes by column name (an asyncpg record, a
    SQLAlchemy row mapping), so `decrypt_fields` reads both alike."""

    __slots__ = ("_row",)

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return self._row[name]


def decrypt_fields(
    ctx: VaultContext, row: Row, wanted: tuple[str, ...], *, cache_key: bool = True
) -> dict[str, Any]:
    """Plaintext of the wanted fields that the subject has; absent fields are left out.

    `cache_key=False` (bulk resolution) leaves the unwrapped key out of the DEK cache: a
    batch of 10,000 subjects would otherwise push out the keys single lookups reuse."""
    # By column name: a RowView's record, a SQLAlchemy row's mapping, or a row that
    # already indexes by name (row mapping, asyncpg record, dict).
    cols = row._row if isinstance(row, RowView) else getattr(row, "_mapping", row)
    subject_id, dek_version = cols["id"], cols["dek_version"]
    dek = ctx.deks.dek(subject_id, cols["kek_version"], cols["wrapped_dek"], remember=cache_key)
    out: dict[str, Any] = {}
    for field in wanted:
        blob = cols[_SEALED_COLUMN[field]]
        if blob is None:
            continue
        text = open_field(dek, subject_id, field, dek_version, blob)
        out[field] = _decode_json(text) if field == "postal_address" else text
    return out


#: Column of each field's ciphertext; the address is sealed as JSON.
_SEALED_COLUMN = {field: f"{field}_ct" for field in CONTACT_FIELDS}
_decode_json = msgspec.json.Decoder().decode


def identifier_digest(ctx: VaultContext, kind: str, value: str) -> str:
    """Blind-index digest of a lookup identifier, normalised like stored values."""
    normalised = normalise_contact({kind: value})[kind]
    assert normalised is not None
    return ctx.indexer.digest(kind, normalised)
