"""What every area's bodies share: length-limited strings, ids, and the problem+json shape.

Each area's request and response bodies (msgspec Structs: separate shapes for create,
update, read) live beside its routes, in `api/<area>/schemas.py`.

Length limits sit on every string so bad input is rejected by validation with a 400 before
any domain code runs.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal, TypeGuard, get_args

from msgspec import Meta, Struct

from vault.subjects.contact import PHONE_SHAPE

FieldName = Literal["email", "phone", "name", "postal_address", "external_ref"]


Short = Annotated[str, Meta(min_length=1, max_length=100)]


Text200 = Annotated[str, Meta(min_length=1, max_length=200)]


#: The character categories contact text may not contain (`vault.subjects.contact`):
#: control, format, surrogate, private-use and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _class_of(refused: Any) -> str:
    """A negated character class of the code points `refused` holds (ranges merged)."""
    parts, start = [], None
    for code in range(0x110000 + 1):
        if code <= 0x10FFFF and refused(chr(code)):
            start = code if start is None else start
        elif start is not None:
            last = code - 1
            parts.append(_escape(start) + ("" if last == start else "-" + _escape(last)))
            start = None
    return "[^" + "".join(parts) + "]"


def _contact_text_pattern() -> str:
    """What the contact-text check accepts: no refused character, and something left after
    trimming white space. Generated from this Python's Unicode database (the one the server
    checks with), in Python's regex syntax (`\\uXXXX`, `\\UXXXXXXXX`)."""

    def refused(ch: str) -> bool:
        return unicodedata.category(ch) in _REFUSED_CATEGORIES

    def refused_or_space(ch: str) -> bool:
        return refused(ch) or ch.isspace()

    allowed = _class_of(refused)
    return f"^{allowed}*{_class_of(refused_or_space)}{allowed}*$"


CONTACT_TEXT_PATTERN = _contact_text_pattern()
#: The document's component for that rule; each field refers to it (the pattern is long).
CONTACT_TEXT_COMPONENT = "ContactText"
CONTACT_TEXT_REFERENCE = {
    "extra": {"allOf": [{"$ref": f"#/components/schemas/{CONTACT_TEXT_COMPONENT}"}]}
}


def contact_text_schema() -> Any:
    """The `ContactText` component of the document."""
    from litestar.openapi.spec import OpenAPIType, Schema

    return Schema(
        type=OpenAPIType.STRING,
        pattern=CONTACT_TEXT_PATTERN,
        description="Contact data as text: no control, format, surrogate, private-use or "
        "unassigned characters (Unicode categories Cc, Cf, Cs, Co, Cn), and not blank. The "
        "pattern is in Python's regex syntax.",
    )


#: Contact data as text (a name, a customer number, the parts of an address): the server
#: refuses control and unassigned characters and blank text with a 422 naming the field.
ContactText200 = Annotated[
    str, Meta(min_length=1, max_length=200, extra_json_schema=CONTACT_TEXT_REFERENCE)
]
ContactShort = Annotated[
    str, Meta(min_length=1, max_length=100, extra_json_schema=CONTACT_TEXT_REFERENCE)
]


#: What the e-mail check (`email_validator`, no deliverability lookup) accepts, in ASCII: a
#: dot-atom local part, `@`, dot-separated host labels and an alphabetic top-level domain.
#: In the document only: the server checks with its validator and answers a 422 naming the
#: field, which a pattern mismatch in msgspec (a 400) would not.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
#: E.164 (`+` and up to 15 digits) or a national form of the default region (a leading 0):
#: digits with optional spaces, hyphens, dots, slashes and parentheses between them. The
#: server checks the same shape before libphonenumber's validity.
PHONE_PATTERN = PHONE_SHAPE
#: The document's name for "a number libphonenumber holds valid" (its ranges per country
#: are data no pattern can carry); the pattern above is the shape, the format the validity.
PHONE_FORMAT = "phone"


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
        extra_json_schema={
            "extra": {"pattern": PHONE_PATTERN, "format": PHONE_FORMAT},
            "examples": ["+4915112345678"],
        },
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


ContactChannel = Literal["email", "letter", "sms", "phone"]
CONTACT_CHANNELS: frozenset[str] = frozenset(get_args(ContactChannel))


def _is_contact_channel(value: str) -> TypeGuard[ContactChannel]:
    return value in CONTACT_CHANNELS


def contact_channel(value: str | None) -> ContactChannel | None:
    """A channel the vault names, as the API's type. The vault stores no other value, so
    anything else is a defect, refused (a 500) rather than passed on as a wrong enum."""
    if value is None or _is_contact_channel(value):
        return value
    raise ValueError(f"not a contact channel: {value!r}")


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
