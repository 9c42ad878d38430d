"""Request and response bodies as msgspec Structs: separate shapes for create, update, read.

Length limits sit on every string so bad input is rejected by validation with a 400 before
any domain code runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

FieldName = Literal["email", "phone", "name", "postal_address", "external_ref"]
Short = Annotated[str, Meta(min_length=1, max_length=100)]
Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
EmailText = Annotated[str, Meta(min_length=3, max_length=320)]
PhoneText = Annotated[str, Meta(min_length=3, max_length=40)]
Uuid = Annotated[str, Meta(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]


class PostalAddressIn(Struct, forbid_unknown_fields=True):
    street: Text200
    postal_code: Annotated[str, Meta(min_length=1, max_length=20)]
    city: Short
    country: Annotated[str, Meta(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")]
    addition: Text200 | None = None


class SubjectCreate(Struct, forbid_unknown_fields=True):
    """A new subject's contact data; at least one field."""

    email: EmailText | None = None
    phone: PhoneText | None = None
    name: Text200 | None = None
    postal_address: PostalAddressIn | None = None
    external_ref: Short | None = None


class SubjectCreated(Struct):
    subject_id: str


class ContactPatch(Struct, forbid_unknown_fields=True):
    """Rectification: a field given replaces the stored value; `null` removes it."""

    email: EmailText | None | UnsetType = UNSET
    phone: PhoneText | None | UnsetType = UNSET
    name: Text200 | None | UnsetType = UNSET
    postal_address: PostalAddressIn | None | UnsetType = UNSET
    external_ref: Short | None | UnsetType = UNSET


class ContactPatched(Struct):
    subject_id: str
    changed: list[str]


class EvidenceIn(Struct, forbid_unknown_fields=True):
    touchpoint: Short
    method: Short
    notice_version: Short
    language: Annotated[str, Meta(min_length=2, max_length=2)]
    notice_text_hash: Annotated[str, Meta(max_length=71)] | None = None
    explicit: bool = False
    ip: Annotated[str, Meta(max_length=64)] | None = None
    user_agent: Annotated[str, Meta(max_length=512)] | None = None


class ConsentCreate(Struct, forbid_unknown_fields=True):
    purpose: Short
    expires_at: datetime | None = None
    evidence: EvidenceIn | None = None
    reference: Text200 | None = None


class ConsentCreated(Struct):
    consent_id: str
    status: str
    expires_at: datetime | None
    basis: str


class EvidenceOut(Struct):
    touchpoint: str | None = None
    method: str | None = None
    notice_version: str | None = None
    notice_text_hash: str | None = None
    language: str | None = None
    collected_by: str | None = None


class HistoryEntry(Struct):
    at: datetime
    event: str
    status: str
    actor: str
    expires_at: datetime | None = None


class ConsentOut(Struct):
    consent_id: str
    subject_id: str
    purpose: str
    basis: str
    status: str
    reference: str | None
    created_at: datetime
    granted_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    confirm_deadline: datetime | None
    evidence: EvidenceOut
    history: list[HistoryEntry]


class ConsentList(Struct):
    items: list[ConsentOut]


class ConfirmRequest(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=100)]


class LookupRequest(Struct, forbid_unknown_fields=True):
    """A purpose plus exactly one identifier; `fields` narrows what is returned."""

    purpose: Short
    subject_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    email: EmailText | None = None
    phone: PhoneText | None = None
    external_ref: Short | None = None
    fields: Annotated[list[FieldName], Meta(min_length=1, max_length=5)] | None = None


class BasisOut(Struct):
    id: str
    type: str
    expires_at: datetime | None


class LookupResponse(Struct):
    subject_id: str
    purpose: str
    fields: dict[str, Any]
    basis: BasisOut


class ClientCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    role: Literal["writer", "lookup", "dpo", "admin"]
    purposes: Annotated[list[Short], Meta(max_length=50)] = msgspec.field(default_factory=list)


class ClientOut(Struct):
    name: str
    role: str
    purposes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ClientCreated(Struct):
    client: ClientOut
    api_key: str


class ClientList(Struct):
    items: list[ClientOut]


class Health(Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class ProblemError(Struct):
    field: str
    message: str


class Problem(Struct):
    """RFC 9457 problem details, as every error is answered."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    reason: str | None = None
    errors: list[ProblemError] | None = None
