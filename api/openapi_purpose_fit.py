""" "Channel and type must fit the named purpose", written into the OpenAPI document.

The server refuses a contact whose `channel` is not one of its purpose's channels, or whose
`type` is not the purpose's communication type (`vault.catalogue.contact_pressure.fit_contact`,
a 422). That rule depends on the purpose the same body names, which JSON Schema says with one
`if`/`then` per purpose: "if `purpose` is P, then `channel` is one of P's channels and `type`
is P's type". The rules are generated from the catalogue the server serves, so the document
and the check cannot drift apart (issue 17: the document says exactly what is accepted).

A request body opts in with a `__purpose_fit__` class variable naming where its channel and
type sit: `""` for the body itself, a property name (`"contact"`) for a nested object.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIType, Reference, Schema

from vault.catalogue.loader import Policies

PURPOSE_FIT = "__purpose_fit__"


@dataclass(frozen=True)
class PurposeFit:
    """Each purpose's channels (the default first) and communication type."""

    channels: dict[str, tuple[str, ...]]
    types: dict[str, str]


def catalogue_purpose_fit(policies: Policies) -> PurposeFit:
    purposes = policies.purposes.purposes.values()
    return PurposeFit(
        channels={p.id: tuple(p.channels) for p in purposes},
        types={p.id: p.communication_type.value for p in purposes},
    )


def _nullable(prop: Schema | Reference | None) -> bool:
    """Whether a property accepts `null` (Litestar writes `X | None` as a `oneOf`, or a
    nullable literal as a list of types)."""
    if not isinstance(prop, Schema):
        return False
    types = prop.type if isinstance(prop.type, list) else [prop.type]
    return OpenAPIType.NULL in types or any(
        isinstance(s, Schema) and s.type == OpenAPIType.NULL for s in prop.one_of or []
    )


def _fitting(
    purpose: str, fit: PurposeFit, props: dict[str, Schema | Reference], nested: bool
) -> dict[str, Schema | Reference]:
    """The `channel` and `type` a contact for `purpose` may name. A nested contact's fields
    are both optional (`null` is the purpose's default), so `null` stays allowed there."""
    allowed: dict[str, list[str | None]] = {
        "channel": list(fit.channels[purpose]),
        "type": [fit.types[purpose]],
    }
    out: dict[str, Schema | Reference] = {}
    for name, values in allowed.items():
        if not nested and name not in props:
            continue
        null: list[str | None] = [None] if nested or _nullable(props.get(name)) else []
        out[name] = Schema(enum=[*values, *null])
    return out


def add_purpose_fit(schema: Schema, where: tuple[str, ...], fit: PurposeFit) -> None:
    """Add one `if purpose is P then channel/type fit P` rule per purpose to `schema`'s
    `allOf`, for the channel and type at each place in `where`."""
    props = dict(schema.properties or {})
    rules: list[Schema | Reference] = []
    for purpose in fit.channels:
        then: dict[str, Schema | Reference] = {}
        for place in where:
            if place:
                then[place] = Schema(properties=_fitting(purpose, fit, props, nested=True))
            else:
                then.update(_fitting(purpose, fit, props, nested=False))
        rules.append(
            Schema(
                schema_if=Schema(
                    properties={"purpose": Schema(const=purpose)}, required=["purpose"]
                ),
                then=Schema(properties=then),
            )
        )
    schema.all_of = [*(schema.all_of or []), *rules]
    rule = (
        "`channel` must be one of the purpose's channels and `type` its communication type "
        "(policies/purposes.toml; the `allOf` rules say it per purpose)."
    )
    schema.description = f"{schema.description} {rule}" if schema.description else rule
