"""OpenAPI links: how one operation's answer feeds the next (OpenAPI 3.1 Link Objects).

A client that created a subject holds everything it needs for the subject's next steps: the
subject's id for its consents, preferences and the lookup, and the contact data's `ETag` for
the conditional rectification. The links say so in the document, so an integrator (and a
stateful test: schemathesis follows them) sees the chain create subject -> consent ->
lookup, and where each value comes from, instead of guessing from prose.

Links are declared here, by operation id, and attached after the document is built: the
handlers stay free of documentation plumbing, and a link naming an operation or status the
document lacks fails at start-up rather than publishing a dangling reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar.openapi.spec import Link, OpenAPI, OpenAPIResponse

_METHODS = ("get", "put", "post", "delete", "patch")

#: Expressions (OpenAPI runtime expressions) for values the linked operations take.
_CREATED_SUBJECT = "$response.body#/subject_id"
_SUBJECT_IN_PATH = "$request.path.subject_id"
_ETAG = "$response.header.ETag"
#: A lookup names exactly one identifier; the other identifiers are sent as null, so that a
#: client (or a generator) filling the rest of the body cannot add a second one.
_NO_OTHER_IDENTIFIER = {"email": None, "phone": None, "external_ref": None}


@dataclass(frozen=True)
class _Link:
    """One link from `source`'s `status` answer to operation `target`."""

    source: str
    status: str
    name: str
    target: str
    description: str
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: Any = None


LINKS: tuple[_Link, ...] = (
    # POST /v1/subjects 201: the new subject's id, and its contact data's first state.
    _Link(
        "createSubject",
        "201",
        "RecordConsent",
        "recordConsent",
        "Record a consent or another basis for the new subject.",
        {"path.subject_id": _CREATED_SUBJECT},
    ),
    _Link(
        "createSubject",
        "201",
        "ListConsents",
        "listConsents",
        "The new subject's consents (none yet).",
        {"path.subject_id": _CREATED_SUBJECT},
    ),
    _Link(
        "createSubject",
        "201",
        "RectifyContact",
        "rectifyContact",
        "Rectify the new subject's contact data: `If-Match` takes this answer's `ETag`.",
        {"path.subject_id": _CREATED_SUBJECT, "header.If-Match": _ETAG},
    ),
    _Link(
        "createSubject",
        "201",
        "GetPreferences",
        "getPreferences",
        "The new subject's contact preferences and their `ETag`.",
        {"path.subject_id": _CREATED_SUBJECT},
    ),
    _Link(
        "createSubject",
        "201",
        "Lookup",
        "lookup",
        "Look the new subject up by its id (denied `no_consent` until a consent is recorded).",
        request_body={"subject_id": _CREATED_SUBJECT, **_NO_OTHER_IDENTIFIER},
    ),
    # POST /v1/subjects/{subject_id}/consents 201: the consent, for the purpose just recorded.
    _Link(
        "recordConsent",
        "201",
        "Lookup",
        "lookup",
        "Look the subject up for the purpose this consent was recorded for.",
        request_body={
            "subject_id": _SUBJECT_IN_PATH,
            "purpose": "$request.body#/purpose",
            **_NO_OTHER_IDENTIFIER,
        },
    ),
    _Link(
        "recordConsent",
        "201",
        "WithdrawConsent",
        "withdrawConsent",
        "Withdraw this consent (or end this basis).",
        {"path.subject_id": _SUBJECT_IN_PATH, "path.consent_id": "$response.body#/consent_id"},
    ),
    _Link(
        "recordConsent",
        "201",
        "ConsentProof",
        "consentProof",
        "The proof of this consent (the DPO's role).",
        {"path.consent_id": "$response.body#/consent_id"},
    ),
    # The contact data's and the preferences' ETags, for the next conditional update.
    _Link(
        "rectifyContact",
        "200",
        "RectifyContact",
        "rectifyContact",
        "Rectify again: `If-Match` takes this answer's `ETag`.",
        {"path.subject_id": _SUBJECT_IN_PATH, "header.If-Match": _ETAG},
    ),
    _Link(
        "lookup",
        "200",
        "RectifyContact",
        "rectifyContact",
        "Rectify the subject found: `If-Match` takes this answer's `ETag`.",
        {"path.subject_id": "$response.body#/subject_id", "header.If-Match": _ETAG},
    ),
    _Link(
        "getPreferences",
        "200",
        "SetPreferences",
        "setPreferences",
        "Replace the preferences read: `If-Match` takes this answer's `ETag`.",
        {"path.subject_id": _SUBJECT_IN_PATH, "header.If-Match": _ETAG},
    ),
)


class _BodyLink(Link):
    """A Link whose `requestBody` is written as given: Litestar's serialisation drops `None`
    from every mapping, which would lose the explicit nulls of `_NO_OTHER_IDENTIFIER`."""

    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        if self.request_body is not None:
            schema["requestBody"] = self.request_body
        return schema


def _operations(document: OpenAPI) -> dict[str, Any]:
    found = {}
    for item in (document.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is not None and operation.operation_id:
                found[operation.operation_id] = operation
    return found


def document_links(document: OpenAPI) -> None:
    """Attach `LINKS` to their source operations' answers; a link whose source, status or
    target the document lacks is an error (a broken link would mislead every client)."""
    operations = _operations(document)
    for link in LINKS:
        if link.target not in operations:
            raise LookupError(f"link {link.name} names unknown operation {link.target}")
        source = operations.get(link.source)
        response = (source.responses or {}).get(link.status) if source else None
        if not isinstance(response, OpenAPIResponse):
            raise LookupError(f"link {link.name}: no {link.status} answer of {link.source}")
        response.links = {
            **(response.links or {}),
            link.name: _BodyLink(
                operation_id=link.target,
                parameters=link.parameters or None,
                request_body=link.request_body,
                description=link.description,
            ),
        }
