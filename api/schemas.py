"""What every area's bodies share: length-limited strings, ids, and the problem+json shape.

Each area's request and response bodies (msgspec Structs: separate shapes for create,
update, read) live beside its routes, in `api/<area>/schemas.py`.

Length limits sit on every string so bad input is rejected by validation with a 400 before
any domain code runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

FieldName = Literal["email", "phone", "name", "postal_address", "external_ref"]


Short = Annotated[str, Meta(min_length=1, max_length=100)]


Text200 = Annotated[str, Meta(min_length=1, max_length=200)]


#: What the e-mail check (`email_validator`, no deliverability lookup) accepts, in ASCII: a
#: dot-atom local part, `@`, dot-separated host labels and an alphabetic top-level domain.
#: In the document only: the server checks with its validator and answers a 422 naming the
#: field, which a pattern mismatch in msgspec (a 400) would not.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
#: E.164 (`+` and up to 15 digits) or a national form of the default region (a leading 0):
#: digits with optional spaces, hyphens, dots, slashes and parentheses between them.
PHONE_PATTERN = r"^(\+[1-9]|0)[0-9 ()./-]{5,30}[0-9]$"


EmailText = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=320,
        extra_json_schema={"extra": {"pattern": EMAIL_PATTERN}, "examples": ["anna@example.org"]},
    ),
]


PhoneText = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=40,
        extra_json_schema={"extra": {"pattern": PHONE_PATTERN}, "examples": ["+4915112345678"]},
    ),
]


UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


Uuid = Annotated[str, Meta(min_length=36, max_length=36, pattern=UUID_PATTERN)]


def uuid_path(description: str) -> Any:
    """A UUID path parameter. Litestar takes a path parameter's constraints from its
    `Parameter`, not from the `Annotated` metadata of `Uuid`, so they are repeated here (else
    any string reaches the database and the OpenAPI document shows no pattern)."""
    from litestar.params import Parameter

    return Parameter(description=description, min_length=36, max_length=36, pattern=UUID_PATTERN)


#: A contact channel: one of the rules' channels (the built-in email, letter, sms, phone
#: and those `policies/contact-pressure.toml` declares), so not a fixed type: the domain
#: refuses any other with a 422 naming the field, and the OpenAPI document lists the
#: configured ones (`api.openapi_schema.catalogue_vocabularies`).
ContactChannel = Annotated[str, Meta(min_length=1, max_length=16, pattern=r"^[a-z][a-z0-9_]*$")]


def contact_channel(value: str | None) -> str | None:
    """A channel the vault names, as the API passes it on (the vault stores only channels
    of its rules)."""
    return value


ContactType = Literal["service", "editorial", "commercial", "calamity"]


WordId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


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
