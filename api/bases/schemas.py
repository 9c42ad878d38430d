"""Bodies of the bases area's routes: consents, their evidence and history, confirmation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, ClassVar

from litestar.openapi.spec import Schema
from msgspec import Meta, Struct

from api.bases.consent_rules import consent_rules
from api.schemas import FUTURE_FORMAT, NOT_BLANK_PATTERN, FieldName, Short, Text200
from vault.bases.consents import Evidence
from vault.bases.consents.records import COLLECTION_METHODS, LANGUAGES
from vault.catalogue.loader import Policies

#: What the evidence checks (consents and preferences alike) accept, in the document only:
#: the server answers a 422 naming the field, which a msgspec constraint (a 400) would not.
_METHOD = Meta(extra_json_schema={"extra": {"enum": list(COLLECTION_METHODS)}})
_LANGUAGE = Meta(min_length=2, max_length=2, extra_json_schema={"extra": {"enum": list(LANGUAGES)}})
_NOT_BLANK = Meta(extra_json_schema={"extra": {"pattern": NOT_BLANK_PATTERN}})
#: A time after the server's clock when the request arrives: the format says so (no JSON
#: Schema keyword is relative to "now").
FutureTime = Annotated[
    datetime,
    Meta(
        description="RFC 3339 date-time; format `future-date-time`: after the server's clock",
        extra_json_schema={"extra": {"format": FUTURE_FORMAT}},
    ),
]
_DIGEST = Meta(max_length=71, extra_json_schema={"extra": {"pattern": r"^(sha256:)?[0-9a-f]{64}$"}})


class EvidenceIn(Struct, forbid_unknown_fields=True):
    touchpoint: Short
    method: Annotated[Short, _METHOD]
    notice_version: Annotated[Short, _NOT_BLANK]
    language: Annotated[str, _LANGUAGE]
    notice_text_hash: Annotated[str, _DIGEST] | None = None
    explicit: bool = False
    ip: Annotated[str, Meta(max_length=64)] | None = None
    user_agent: Annotated[str, Meta(max_length=512)] | None = None


class ConsentEvidenceIn(EvidenceIn, forbid_unknown_fields=True):
    """The evidence of a consent (or of another basis): the common evidence, plus the brands
    it was given for."""

    #: The brands the consent was given for; left out: every brand the purpose covers.
    brands: Annotated[list[Short], Meta(min_length=1, max_length=20)] | None = None


def evidence_of(e: EvidenceIn | None) -> Evidence | None:
    """The vault's evidence record from the request body (consents and preferences alike)."""
    if e is None:
        return None
    return Evidence(
        touchpoint=e.touchpoint,
        method=e.method,
        notice_version=e.notice_version,
        language=e.language,
        notice_text_hash=e.notice_text_hash,
        explicit=e.explicit,
        ip=e.ip,
        user_agent=e.user_agent,
        brands=tuple(e.brands or ()) if isinstance(e, ConsentEvidenceIn) else (),
    )


class ConsentCreate(Struct, forbid_unknown_fields=True):
    """A consent or another lawful basis for a purpose; what it must carry depends on the
    purpose (the `allOf` rules, from policies/purposes.toml)."""

    __catalogue_openapi__: ClassVar[Callable[[Policies], list[Schema]]] = staticmethod(
        consent_rules
    )

    purpose: Short
    expires_at: FutureTime | None = None
    evidence: ConsentEvidenceIn | None = None
    reference: Text200 | None = None
    excluded_fields: Annotated[list[FieldName], Meta(max_length=5)] | None = None


class ConsentCreated(Struct):
    consent_id: str
    status: str
    expires_at: datetime | None
    basis: str
    excluded_fields: list[FieldName] = []


class EvidenceOut(Struct):
    touchpoint: str | None = None
    method: str | None = None
    notice_version: str | None = None
    notice_text_hash: str | None = None
    language: str | None = None
    collected_by: str | None = None
    brands: list[str] | None = None


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
    excluded_fields: list[FieldName] = []


class ConsentList(Struct):
    items: list[ConsentOut]


class ConfirmRequest(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=100)]
