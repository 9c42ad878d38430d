"""Subjects and their contact data: create, rectify, and decrypt for an allowed purpose.

A subject row carries its wrapped DEK, one ciphertext per field and blind-index digests for
the identifying fields. Plaintext exists only in memory, between decrypt and response.

Every write of contact data raises the row's `contact_revision` and seals *every* field at
the new revision (`vault.crypto.fields`), so no older ciphertext of any field opens again.
A row found by a blind index must hold the value it indexes: `decrypt_fields(found_by=...)`
re-derives the index from the decrypted value and refuses a mismatch.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.catalogue.purposes import CONTACT_FIELDS
from vault.crypto import IndexMismatch, open_field, seal_field
from vault.errors import (
    Conflict,
    InvalidInput,
    InvariantViolation,
    NotFound,
    Unavailable,
    precondition_refusal,
)
from vault.recipients import events as outbox
from vault.storage.ports import Row as ByName
from vault.storage.tables import subjects
from vault.subjects import identity
from vault.subjects.contact import normalise_contact
from vault.subjects.decision import DenyReason
from vault.subjects.integrity import AuditedAttempt, audited_attempt

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Blind-indexed identifier fields and their index columns.
INDEXED = {"email": "email_bidx", "phone": "phone_bidx", "external_ref": "external_ref_bidx"}


class SubjectStatus:
    ACTIVE = "active"
    RESTRICTED = "restricted"
    ERASED = "erased"


def _is_external_ref_conflict(exc: Unavailable) -> bool:
    cause = exc.__cause__
    return isinstance(cause, IntegrityError) and "external_ref_bidx" in str(cause.orig)


def sealed_columns(
    ctx: VaultContext,
    subject_id: str,
    dek: Any,
    dek_version: int,
    fields: Mapping[str, str | None],
    *,
    revision: int,
    index: bool = True,
) -> dict[str, Any]:
    """Column values for the given canonical field texts (None clears a field), sealed at
    `revision`, which the caller stores as the row's `contact_revision` in the same write;
    with `index`, the blind-index digests of the identifying fields too."""
    values: dict[str, Any] = {}
    for field, text in fields.items():
        values[f"{field}_ct"] = (
            None
            if text is None
            else seal_field(dek, subject_id, field, dek_version, text, revision=revision)
        )
        if index and field in INDEXED:
            values[INDEXED[field]] = None if text is None else ctx.indexer.digest(field, text)
    return values


def resealed_columns(
    ctx: VaultContext, row: Any, dek: Any, changes: dict[str, str | None]
) -> dict[str, Any]:
    """Column values for a write of contact data: the changed fields (with their blind
    indexes) and every other stored field re-sealed at the next revision, plus that
    revision. Raises `IntegrityCheckFailed` if a stored field does not open (nothing is
    re-sealed over tampered data)."""
    revision = row.contact_revision + 1
    kept = _open_texts(
        ctx,
        getattr(row, "_mapping", row),
        tuple(f for f in CONTACT_FIELDS if f not in changes),
        dek=dek,
    )
    return {
        "contact_revision": revision,
        **sealed_columns(ctx, row.id, dek, row.dek_version, kept, revision=revision, index=False),
        **sealed_columns(ctx, row.id, dek, row.dek_version, changes, revision=revision),
    }


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
        "contact_revision": 1,
        "created_at": now,
        "updated_at": now,
        # The sweep looks at every new subject once: it may stay without any basis.
        "retention_check_at": now,
        **sealed_columns(ctx, subject_id, dek, 1, fields, revision=1),
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


async def load_subject(
    conn: AsyncConnection, subject_id: str, *, for_update: bool = False
) -> Row[Any]:
    stmt = select(subjects).where(subjects.c.id == subject_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound("no such subject")
    return row


async def load_live_subject(attempt: AuditedAttempt, subject_id: str) -> Row[Any]:
    """The subject's row, locked for a change inside an audited attempt: an unknown subject
    is `NotFound`, an erased one a `Conflict` recorded as `subject_erased` (finding 6)."""
    row = await load_subject(attempt.conn, subject_id, for_update=True)
    if row.status == SubjectStatus.ERASED:
        attempt.reason = DenyReason.SUBJECT_ERASED.value
        raise Conflict("the subject was erased")
    return row


async def rectify_contact(
    ctx: VaultContext, actor: Actor, subject_id: str, changes: Mapping[str, Any]
) -> list[str]:
    """Replace (or clear, with None) the given fields; returns the changed field names
    (`rectify_contact_if` without a precondition)."""
    changed, _ = await rectify_contact_if(ctx, actor, subject_id, changes, if_match=None)
    return changed


async def rectify_contact_if(
    ctx: VaultContext,
    actor: Actor,
    subject_id: str,
    changes: Mapping[str, Any],
    *,
    if_match: frozenset[int] | None,
) -> tuple[list[str], int]:
    """Replace (or clear, with None) the given fields if the stored contact is still at one
    of the revisions `if_match` names (the caller's `If-Match`; None: whatever it is; empty:
    the header was missing, `PreconditionRequired`); returns the changed field names and
    the new revision. The check runs on the locked row, so of two writers who
    read the same revision one wins and the other gets `PreconditionFailed` (audited as a
    denial with reason `precondition_failed`), instead of silently overwriting.

    A refusal (unknown subject, erased subject, a stored field that does not open, so
    nothing is re-sealed over tampered data) is rolled back and then audited as a denial of
    `client:contact:rectify` in a transaction of its own (`vault.integrity.audited_attempt`);
    a failed check is raised as `IntegrityFailure`."""
    fields = normalise_contact(changes)
    if not fields:
        raise InvalidInput("no field to change", {"body": "is empty"})
    now = ctx.clock.now()
    try:
        async with audited_attempt(
            ctx,
            actor,
            AuditAction.CONTACT_RECTIFY,
            at=now,
            subject_id=subject_id,
            fields=sorted(fields),
            not_found=DenyReason.SUBJECT_NOT_FOUND.value,
        ) as attempt:
            conn = attempt.conn
            row = await load_live_subject(attempt, subject_id)
            refusal = precondition_refusal(row.contact_revision, if_match)
            if refusal is not None:
                attempt.reason = refusal.reason
                raise refusal
            dek = ctx.deks.dek(subject_id, row.kek_version, row.wrapped_dek)
            values = resealed_columns(ctx, row, dek, fields)
            await conn.execute(
                update(subjects).where(subjects.c.id == subject_id).values(updated_at=now, **values)
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
            await outbox.emit(
                conn,
                outbox.EventType.SUBJECT_RECTIFIED,
                subject_id=subject_id,
                fields=fields,
                at=now,
            )
            await _record_identity_change(ctx, conn, actor, row, fields, now)
    except Unavailable as exc:
        if _is_external_ref_conflict(exc):
            raise Conflict("a subject with this external_ref already exists") from None
        raise
    return sorted(fields), int(values["contact_revision"])


async def _record_identity_change(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    before: Row[Any],
    fields: dict[str, str | None],
    now: datetime,
) -> None:
    """A changed e-mail address or phone number must not hand over the account
    (`vault.identity`): recorded, sessions ended, and the old e-mail address told, in the
    rectification's transaction. `before` is the row as it was, so it opens the old address."""
    if identity.changed_kinds(ctx, before, fields):
        old = decrypt_fields(ctx, before, ("email",)).get("email")
        await identity.record_in(ctx, conn, actor, before, fields, now, notice_to=old)


def decrypt_fields(
    ctx: VaultContext,
    row: Row[Any] | Mapping[str, Any] | ByName,
    wanted: tuple[str, ...],
    *,
    cache_key: bool = True,
    found_by: tuple[str, str] | None = None,
    dek: Any = None,
) -> dict[str, Any]:
    """Plaintext of the wanted fields that the subject has; absent fields are left out.

    `found_by=(kind, digest)`: the row was found by that blind-index digest, so it must hold
    the value the digest indexes. The field is opened (revealed only if wanted), its index
    re-derived and compared; a row without that field or key fails too. Raises
    `IntegrityCheckFailed` (a ciphertext that does not open, or `IndexMismatch`).

    `cache_key=False` (bulk resolution) leaves the unwrapped key out of the DEK cache: a
    batch of 10,000 subjects would otherwise push out the keys single lookups reuse.

    `dek`: the row's cipher, unwrapped already (off the event loop, `vault.access.reveal`)."""
    # By column name: a SQLAlchemy row's mapping, or a row that already indexes by name
    # (row mapping, asyncpg record, dict: what a storage `ReadPort` returns).
    cols: Any  # by column name (a RowMapping also takes Column keys)
    if isinstance(row, Row):
        cols = row._mapping
    else:
        cols = row
    if found_by is None:
        texts = _open_texts(ctx, cols, wanted, cache_key=cache_key, dek=dek)
    else:
        kind, digest = found_by
        if cols["wrapped_dek"] is None or cols[_SEALED_COLUMN[kind]] is None:
            raise IndexMismatch()  # an index entry on a row without that value
        opened = wanted if kind in wanted else (*wanted, kind)
        texts = _open_texts(ctx, cols, opened, cache_key=cache_key, dek=dek)
        ctx.indexer.verify(kind, texts[kind], digest)
        if kind not in wanted:
            del texts[kind]
    if "postal_address" in texts:
        texts["postal_address"] = _decode_json(texts["postal_address"])
    return texts


def _open_texts(
    ctx: VaultContext,
    cols: Any,
    wanted: tuple[str, ...],
    *,
    cache_key: bool = True,
    dek: Any = None,
) -> dict[str, Any]:
    """The stored canonical text of each wanted field the row has, opened at the row's
    revision (the address as its JSON text)."""
    subject_id, dek_version, revision = cols["id"], cols["dek_version"], cols["contact_revision"]
    if dek is None:
        dek = ctx.deks.dek(subject_id, cols["kek_version"], cols["wrapped_dek"], remember=cache_key)
    out: dict[str, Any] = {}
    for field in wanted:
        blob = cols[_SEALED_COLUMN[field]]
        if blob is not None:
            out[field] = open_field(dek, subject_id, field, dek_version, blob, revision=revision)
    return out


#: Column of each field's ciphertext; the address is sealed as JSON.
_SEALED_COLUMN = {field: f"{field}_ct" for field in CONTACT_FIELDS}
_decode_json = msgspec.json.Decoder().decode


def identifier_digest(ctx: VaultContext, kind: str, value: str) -> str:
    """Blind-index digest of a lookup identifier, normalised like stored values."""
    normalised = normalise_contact({kind: value})[kind]
    if normalised is None:
        raise InvariantViolation("normalised is unset")
    return ctx.indexer.digest(kind, normalised)
