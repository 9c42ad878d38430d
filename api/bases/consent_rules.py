"""What a new consent (or other basis) must carry for its purpose, written into the OpenAPI
document from the catalogue (`vault.bases.consents.recording.record_basis` checks the same):

- a consent needs `evidence`; an express consent (`explicit_consent`) evidence with
  `explicit: true`; it may leave out some, never all, of the purpose's own fields;
- any other basis needs a `reference` and leaves out no field;
- the evidence's `brands`, each once, are among the purpose's brands (all brands if the
  purpose names none).

One `if purpose is P then ...` rule per purpose, so the document says per purpose what the
server accepts (issue 17) and cannot drift from the catalogue it serves.
"""

from __future__ import annotations

from litestar.openapi.spec import OpenAPIType, Reference, Schema

from api.schemas import NOT_BLANK_PATTERN
from vault.catalogue.loader import Policies
from vault.catalogue.purposes import LawfulBasis, Purpose

_NOT_NULL = Schema(schema_not=Schema(type=OpenAPIType.NULL))


def _brands(purpose: Purpose, policies: Policies) -> Schema:
    allowed = list(purpose.brands) or list(policies.pressure_rules.brands)
    return Schema(
        one_of=[
            Schema(type=OpenAPIType.NULL),
            Schema(type=OpenAPIType.ARRAY, items=Schema(enum=allowed), unique_items=True),
        ]
    )


def _consent(purpose: Purpose, policies: Policies) -> Schema:
    evidence: dict[str, Schema | Reference] = {"brands": _brands(purpose, policies)}
    if purpose.explicit_consent:
        evidence["explicit"] = Schema(const=True)
    return Schema(
        required=["evidence"],
        properties={
            "evidence": Schema(
                schema_not=Schema(type=OpenAPIType.NULL),
                properties=evidence,
                required=["explicit"] if purpose.explicit_consent else None,
            ),
            "excluded_fields": Schema(
                one_of=[
                    Schema(type=OpenAPIType.NULL),
                    Schema(
                        type=OpenAPIType.ARRAY,
                        items=Schema(enum=list(purpose.fields)),
                        unique_items=True,
                        max_items=len(purpose.fields) - 1,
                    ),
                ]
            ),
        },
    )


def _other_basis(purpose: Purpose, policies: Policies) -> Schema:
    return Schema(
        required=["reference"],
        properties={
            "reference": Schema(type=OpenAPIType.STRING, pattern=NOT_BLANK_PATTERN),
            "excluded_fields": Schema(one_of=[Schema(type=OpenAPIType.NULL), Schema(max_items=0)]),
            "evidence": Schema(properties={"brands": _brands(purpose, policies)}),
        },
    )


def consent_rules(policies: Policies) -> list[Schema]:
    """One rule per purpose of the catalogue, for `ConsentCreate`'s `allOf`."""
    rules = []
    for purpose in policies.purposes.purposes.values():
        fits = _consent if purpose.lawful_basis is LawfulBasis.CONSENT else _other_basis
        rules.append(
            Schema(
                schema_if=Schema(
                    properties={"purpose": Schema(const=purpose.id)}, required=["purpose"]
                ),
                then=fits(purpose, policies),
            )
        )
    return rules
