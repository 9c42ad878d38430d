"""Consents and other lawful bases of a subject: record, list with history, withdraw."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody

from api.auth import actor_of, roles
from api.bases.schemas import (
    ConsentCreate,
    ConsentCreated,
    ConsentList,
    ConsentOut,
    EvidenceOut,
    HistoryEntry,
    evidence_of,
)
from api.conditional import etag_header, tagged_json
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, problems
from api.schemas import FieldName, Uuid, uuid_path
from vault.admin.clients import Role
from vault.bases import consents
from vault.bases.consents import BasisRecord


def consent_out(record: BasisRecord) -> ConsentOut:
    return ConsentOut(
        consent_id=record.id,
        subject_id=record.subject_id,
        purpose=record.purpose,
        basis=record.basis,
        status=record.status,
        reference=record.reference,
        created_at=record.created_at,
        granted_at=record.granted_at,
        expires_at=record.expires_at,
        withdrawn_at=record.withdrawn_at,
        confirm_deadline=record.confirm_deadline,
        evidence=EvidenceOut(**record.evidence),
        history=[HistoryEntry(**h) for h in record.history],
        excluded_fields=msgspec.convert(record.excluded_fields, list[FieldName]),
    )


class ConsentController(Controller):
    path = "/v1/subjects/{subject_id:str}/consents"
    tags = ["consents"]

    @post(
        "/",
        opt=roles(Role.WRITER),
        operation_id="recordConsent",
        operation_class=IdempotentOperation,
        summary="Record a consent (with evidence) or another lawful basis for a purpose",
        description=(
            "Double opt-in purposes start as `pending_confirmation`; the vault mails the "
            "confirmation link to the subject's stored e-mail address."
        ),
        status_code=201,
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def record(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ConsentCreate],
        vault: Vault,
        subject_id: Uuid = uuid_path("The subject's pseudonymous id"),
    ) -> ConsentCreated:
        evidence = evidence_of(data.evidence)
        record = await consents.record_basis(
            vault,
            actor_of(request),
            subject_id,
            data.purpose,
            evidence=evidence,
            expires_at=data.expires_at,
            reference=data.reference,
            excluded_fields=data.excluded_fields or (),
        )
        return ConsentCreated(
            consent_id=record.id,
            status=record.status,
            expires_at=record.expires_at,
            basis=record.basis,
            excluded_fields=msgspec.convert(record.excluded_fields, list[FieldName]),
        )

    @get(
        "/",
        opt=roles(Role.WRITER, Role.DPO),
        operation_id="listConsents",
        response_headers=etag_header("Of this list: changes when any consent or basis does"),
        summary="All consents and bases of a subject, newest first, each with its history",
        responses=problems(*AUTHED, 404, 500),
    )
    async def list_(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: Uuid = uuid_path("The subject's pseudonymous id"),
    ) -> Response[ConsentList]:
        records = await consents.list_bases(vault, actor_of(request), subject_id)
        return tagged_json(ConsentList(items=[consent_out(r) for r in records]))

    @post(
        "/{consent_id:str}/withdraw",
        opt=roles(Role.WRITER, Role.DPO),
        operation_id="withdrawConsent",
        operation_class=IdempotentOperation,
        summary="Withdraw a consent (or end another basis), effective immediately",
        status_code=200,
        responses=problems(*AUTHED, 404, 409),
    )
    async def withdraw(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: Uuid = uuid_path("The subject's pseudonymous id"),
        consent_id: Uuid = uuid_path("The consent's id"),
    ) -> ConsentOut:
        record = await consents.withdraw(vault, actor_of(request), subject_id, consent_id)
        return consent_out(record)
