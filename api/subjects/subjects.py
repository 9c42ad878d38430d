"""Subjects: create and rectify contact data. There is deliberately no unpurposed read."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, patch, post
from litestar.params import JSONBody

from api.auth import actor_of, roles
from api.conditional import (
    CONTACT,
    ConditionalOperation,
    etag,
    etag_header,
    if_match,
)
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, UPDATE_REASONS, problems
from api.schemas import Uuid, uuid_path
from api.subjects.schemas import ContactPatch, ContactPatched, SubjectCreate, SubjectCreated
from vault.admin.clients import Role
from vault.subjects import store as subjects


def _present(struct: msgspec.Struct) -> dict[str, Any]:
    """Fields the client actually sent (None included: it clears a field on PATCH)."""
    out: dict[str, Any] = {}
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if value is msgspec.UNSET:
            continue
        out[name] = msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
    return out


class SubjectController(Controller):
    path = "/v1/subjects"
    tags = ["subjects"]
    opt = roles(Role.WRITER)

    @post(
        "/",
        response_headers=etag_header("The contact data's state, for `If-Match` on a PATCH"),
        operation_id="createSubject",
        operation_class=IdempotentOperation,
        summary="Store a new subject's contact data (encrypted per field)",
        status_code=201,
        responses=problems(*AUTHED, 409, 413, 422),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[SubjectCreate], vault: Vault
    ) -> Response[SubjectCreated]:
        given = {k: v for k, v in _present(data).items() if v is not None}
        subject_id = await subjects.create_subject(vault, actor_of(request), given)
        # A new subject's contact data is at revision 1 (`store.create_subject`).
        return Response(
            SubjectCreated(subject_id=subject_id),
            status_code=201,
            headers={"ETag": etag(CONTACT, 1)},
        )

    @patch(
        "/{subject_id:str}/contact",
        operation_id="rectifyContact",
        operation_class=ConditionalOperation,
        response_headers=etag_header("The contact data's new state"),
        summary="Rectify (replace or remove) contact fields of a subject",
        description=(
            "A changed e-mail address or phone number is an identity change: it ends the "
            "customer's privacy-centre sessions, is mailed to the previous e-mail address "
            "(503 and nothing changes when that mail cannot be handed over) and, for a "
            "cooling-off period, gives a session through the new e-mail address no contact "
            "data and no actions unless the previous address or a DPO confirms it. A stored "
            "field that fails its integrity check is not re-sealed: 500, audited. "
            "Requires `If-Match` with the contact's `ETag` (from the lookup, the creation "
            "or the last rectification): 428 without it, 412 when the contact changed since."
        ),
        responses=problems(*AUTHED, 404, 409, 412, 413, 422, 428, 500, reasons=UPDATE_REASONS),
    )
    async def rectify(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ContactPatch],
        vault: Vault,
        subject_id: Uuid = uuid_path("The subject's pseudonymous id"),
    ) -> Response[ContactPatched]:
        changed, now_at = await subjects.rectify_contact_if(
            vault,
            actor_of(request),
            subject_id,
            _present(data),
            if_match=if_match(request, CONTACT),
        )
        return Response(
            ContactPatched(subject_id=subject_id, changed=changed),
            headers={"ETag": etag(CONTACT, now_at)},
        )
