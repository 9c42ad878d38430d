"""`ETag` and `If-Match` (RFC 9110 §8.8.3, §13.1.1): conditional updates (issue 17).

Two systems that read a subject's contact data or preferences and both write back must not
silently overwrite each other's change. Every answer carrying contact data or preferences
names the stored state in `ETag`, and a `PATCH` of contact data or a `PUT` of preferences
must send it back in `If-Match`: without it 428, with another state 412, nothing changed.

The tags are the write counters the vault keeps anyway: the contact's `contact_revision`
(raised by every write of contact data) and the preferences' `version`. The vault compares
them on the locked row (`rectify_contact_if`, `set_preferences(if_match=...)`), so the
check and the write are one step. `If-Match: *` is refused like a missing header: the rule
is ours to enforce, and "any state" is what it exists to rule out. Weak tags never match
(strong comparison, as `If-Match` requires).

Lists (a subject's consents) and requests get an `ETag` of their JSON body, for caches and
for a client that wants to see whether anything changed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.enums import MediaType, ParamType
from litestar.openapi.spec import Operation, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType

CONTACT = "contact"
PREFERENCES = "preferences"
#: A revision no stored state has: what a header naming none of ours compares as.
NO_REVISION = -1
_TAG = re.compile(r'^"(?P<kind>[a-z]+)-r(?P<n>[0-9]{1,12})"$')
_ENTITY_TAG = r'^"(contact|preferences)-r[0-9]{1,12}"$'


def etag(kind: str, revision: int) -> str:
    return f'"{kind}-r{revision}"'


def body_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def if_match(request: Request[Any, Any, Any], kind: str) -> frozenset[int]:
    """The revisions of `kind` the request's `If-Match` names, for the vault to compare on
    the locked row: empty without the header (or with `*`), which the vault refuses with a
    428; tags of another kind, weak or malformed ones are left out, so a header naming none
    of ours matches no state (412). Either refusal comes after the vault's own checks (an
    unknown subject stays a 404) and is audited."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() in ("", "*"):
        return frozenset()
    named = set()
    for tag in (t.strip() for t in raw.split(",")):
        m = _TAG.match(tag)
        if m and m.group("kind") == kind:
            named.add(int(m.group("n")))
    return frozenset(named) if named else frozenset({NO_REVISION})


def tagged_json(body: Any, status_code: int = 200) -> Response[Any]:
    """`body` (a Struct) as JSON with the `ETag` of exactly these bytes."""
    encoded = msgspec.json.encode(body)
    return Response(
        encoded,
        status_code=status_code,
        media_type=MediaType.JSON,
        headers={"ETag": body_etag(encoded)},
    )


def etag_header(description: str) -> list[ResponseHeader]:
    """The documented `ETag` of a response (the handler sets the value)."""
    return [ResponseHeader(name="ETag", documentation_only=True, description=description)]


@dataclass
class ConditionalOperation(Operation):
    """An update that requires `If-Match` (documented here, checked by the handler)."""

    def __post_init__(self) -> None:
        header = Parameter(
            name="If-Match",
            param_in=ParamType.HEADER,
            required=True,
            description=(
                "The `ETag` of the state this update replaces, as the last answer that "
                "carried it gave it. Missing (or `*`): 428; another state: 412 "
                "(`reason` precondition_failed). Nothing changes in either case."
            ),
            schema=Schema(
                type=OpenAPIType.STRING,
                pattern=_ENTITY_TAG,
                examples=['"contact-r3"'],
            ),
        )
        self.parameters = [*(self.parameters or []), header]
