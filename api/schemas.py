"""What every area's bodies share: length-limited strings, ids, and the problem+json shape.

Each area's request and response bodies (msgspec Structs: separate shapes for create,
update, read) live beside its routes, in `api/<area>/schemas.py`.

Length limits sit on every string so bad input is rejected by validation with a 400 before
any domain code runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from vault.subjects.contact import PHONE_SHAPE

FieldName = Literal["email", "phone", "name", "postal_address", "external_ref"]


Short = Annotated[str, Meta(min_length=1, max_length=100)]


Text200 = Annotated[str, Meta(min_length=1, max_length=200)]

#: Not blank: the vault's checks strip a text first, with Python's `str.strip`, whose
#: whitespace is not ECMA's `\s` (it also strips U+001C to U+001F and U+0085, and keeps
#: U+FEFF). So the pattern lists exactly the characters `str.isspace` calls whitespace: a
#: value matches if and only if its stripped text is not empty.
NOT_BLANK_PATTERN = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


#: The document's name for contact data as text (a name, a customer number, the parts of an
#: address): the server (`vault.subjects.contact`) refuses control, format, surrogate,
#: private-use and unassigned characters (Unicode categories Cc, Cf, Cs, Co, Cn) and blank
#: text with a 422 naming the field. A pattern can say it only as a class of some 700 ranges
#: of this Python's Unicode database, which regex engines of other languages read
#: differently and generators draw from slowly, so the document names the rule as a format.
CONTACT_TEXT_FORMAT = "contact-text"
_CONTACT_TEXT = {"extra": {"format": CONTACT_TEXT_FORMAT}}

ContactText200 = Annotated[str, Meta(min_length=1, max_length=200, extra_json_schema=_CONTACT_TEXT)]
ContactShort = Annotated[str, Meta(min_length=1, max_length=100, extra_json_schema=_CONTACT_TEXT)]


#: What the e-mail check (`email_validator`, no deliverability lookup) accepts, in ASCII: a
#: dot-atom local part, `@`, dot-separated host labels and an alphabetic top-level domain.
#: In the document only: the server checks with its validator and answers a 422 naming the
#: field, which a pattern mismatch in msgspec (a 400) would not.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
#: E.164 (`+` and up to 15 digits) or a national form of the default region (a leading 0,
#: perhaps in parentheses): digits with spaces, hyphens, dots, slashes and parentheses. The
#: server checks the same shape before libphonenumber's validity.
PHONE_PATTERN = PHONE_SHAPE
#: The document's name for "a number libphonenumber holds valid" (its ranges per country
#: are data no pattern can carry); the pattern above is the shape, the format the validity.
PHONE_FORMAT = "phone"
#: The document's name for "an RFC 3339 date-time after the server's clock".
FUTURE_FORMAT = "future-date-time"


EmailText = Annotated[
    str,
    Meta(
        min_length=3,
        # RFC 5321's limit, which the e-mail check applies (a 422 beyond it).
        max_length=254,
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
