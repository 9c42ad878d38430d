"""How a request or response body (a msgspec Struct) is written into the OpenAPI document.

Litestar's own Struct plugin lists properties and `required`, but not what else the server
enforces. This plugin, registered on the app ahead of Litestar's, adds two things so the
document says exactly what is accepted (issue 17):

- `additionalProperties: false` for every Struct declared `forbid_unknown_fields=True`:
  msgspec refuses an unknown field there with a 400, so the document must not allow one;
- `enum` for the closed vocabularies of the policy catalogues (purposes, touchpoints) on the
  request properties named after them, with each value's title in the description: the
  catalogue is the one source, so the document is generated from the policies it serves;
- a description for every property (`api.field_glossary`, unless the field has its own)
  and for the schema itself (the Struct's docstring, first paragraph);
- a Struct's `__openapi__` class variable (a mapping of `Schema` attribute names to values),
  for what a Python type cannot say: "exactly one of these identifiers"
  (`exactly_one(...)`), examples of whole bodies;
- a Struct's `__catalogue_openapi__` class variable, a function of the served policies
  giving rules to add to `allOf` (what depends on the catalogue: which purposes rest on
  legitimate interest, for example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.typing import FieldDefinition

from api import field_glossary
from api.i18n import text_for
from api.openapi_purpose_fit import PURPOSE_FIT, PurposeFit, add_purpose_fit
from vault.catalogue.loader import Policies

OPENAPI_EXTRA = "__openapi__"
CATALOGUE_EXTRA = "__catalogue_openapi__"


def exactly_one(*names: str) -> dict[str, Any]:
    """`oneOf` for "exactly one of `names`, not null": each branch requires one of them as
    a non-null value, so a body naming two (or none) matches no branch or two. The server
    counts a field given as `null` as absent, and so does the schema."""
    return {
        "one_of": [
            Schema(
                required=[name], properties={name: Schema(schema_not=Schema(type=OpenAPIType.NULL))}
            )
            for name in names
        ]
    }


@dataclass(frozen=True)
class Vocabulary:
    """A closed vocabulary: its values with a title each, and the request properties (a
    single value, or a list of them) that take one."""

    what: str
    values: dict[str, str]
    single: frozenset[str]
    lists: frozenset[str] = frozenset()
    #: Properties that are objects keyed by a value of the vocabulary, and objects whose
    #: values are one (a customer's quiet times per channel, preferred channel per type).
    map_keys: frozenset[str] = frozenset()
    map_values: frozenset[str] = frozenset()

    def describe(self) -> str:
        return f"One of the {self.what}: " + "; ".join(
            f"`{k}`: {v}" for k, v in self.values.items()
        )


def catalogue_vocabularies(policies: Policies) -> tuple[Vocabulary, ...]:
    """Purposes, touchpoints, brands, priorities and channels as the request bodies name
    them (channels: the built-in four and those the rules declare)."""
    purposes = {p.id: p.title_en for p in policies.purposes.purposes.values()}
    touchpoints = {t.id: t.name_en for t in policies.touchpoints.touchpoints.values()}
    brands = {b.id: b.name_en for b in policies.pressure_rules.brands.values()}
    priorities = {p: p for p in policies.pressure_rules.priorities}
    channels = {
        c: spec.name_en or text_for("en", "pc_pref_channel_", c)
        for c, spec in policies.pressure_rules.channels.items()
    }
    return (
        Vocabulary(
            "contact channels (policies/contact-pressure.toml: the built-in four and "
            "`[channel.<id>]`)",
            channels,
            frozenset({"channel", "preferred_channel"}),
            map_keys=frozenset({"quiet"}),
            map_values=frozenset({"preferred_channels"}),
        ),
        Vocabulary(
            "priorities (policies/contact-pressure.toml; above `normal` only when granted)",
            priorities,
            frozenset({"priority"}),
        ),
        Vocabulary(
            "brands (policies/contact-pressure.toml)",
            brands,
            frozenset({"brand"}),
            frozenset({"brands"}),
        ),
        Vocabulary(
            "purposes (policies/purposes.toml)",
            purposes,
            frozenset({"purpose"}),
            frozenset({"purposes"}),
        ),
        Vocabulary(
            "touchpoints (policies/touchpoints.toml)", touchpoints, frozenset({"touchpoint"})
        ),
    )


def _is_wildcard(default: Any, vocabulary: Vocabulary) -> bool:
    """A default outside the vocabulary is the field's "all of them" value (`*` for a
    subscription's purpose): the server accepts it, so the enum must list it too."""
    return isinstance(default, str) and default not in vocabulary.values


def _restrict(prop: Schema, vocabulary: Vocabulary, *, is_list: bool) -> None:
    if not is_list and prop.enum:
        # A closed vocabulary of the field's own (a `Literal`, e.g. the channel a
        # data-subject request came in by): the catalogue's words are not its values.
        return
    if is_list:
        arrays = [prop, *(prop.one_of or [])]
        for branch in arrays:
            if isinstance(branch, Schema) and isinstance(branch.items, Schema):
                branch.items.enum = list(vocabulary.values)
    else:
        nullable = any(
            isinstance(s, Schema) and s.type == OpenAPIType.NULL for s in prop.one_of or []
        )
        wildcard = [prop.default] if _is_wildcard(prop.default, vocabulary) else []
        prop.enum = [*vocabulary.values, *wildcard, *([None] if nullable else [])]
    listed = vocabulary.describe()
    if not is_list and _is_wildcard(prop.default, vocabulary):
        listed += f"; `{prop.default}`: every one of them (the default)"
    prop.description = f"{prop.description} {listed}" if prop.description else listed


def at_least_one(*names: str) -> dict[str, Any]:
    """`anyOf` for "at least one of `names`, not null" (a null counts as absent)."""
    return {"any_of": exactly_one(*names)["one_of"]}


def _item_limits(schema: Schema, info: msgspec.inspect.StructType) -> None:
    """Length limits of a list's strings, which Litestar leaves out of `items` (msgspec
    refuses an empty identifier in a batch with a 400, so the document must say so)."""
    for field in info.fields:
        kind = field.type
        if isinstance(kind, msgspec.inspect.UnionType):
            kind = next((t for t in kind.types if isinstance(t, msgspec.inspect.ListType)), kind)
        if isinstance(kind, msgspec.inspect.Metadata):
            kind = kind.type
        if not isinstance(kind, msgspec.inspect.ListType):
            continue
        item = kind.item_type
        if isinstance(item, msgspec.inspect.Metadata):
            item = item.type
        if not isinstance(item, msgspec.inspect.StrType):
            continue
        prop = (schema.properties or {}).get(field.encode_name)
        if not isinstance(prop, Schema):
            continue
        for branch in [prop, *(prop.one_of or [])]:
            if isinstance(branch, Schema) and isinstance(branch.items, Schema):
                branch.items.min_length = item.min_length
                branch.items.max_length = item.max_length
                branch.items.pattern = branch.items.pattern or item.pattern


def _lower_bounds(schema: Schema, info: msgspec.inspect.StructType) -> None:
    """A lower bound of 0 on an optional number, which Litestar leaves out of the document
    (it tests the bound for truth): without it a client may send a negative value the
    server refuses."""
    numbers = (msgspec.inspect.IntType, msgspec.inspect.FloatType, msgspec.inspect.Metadata)
    for field in info.fields:
        kind = field.type
        if isinstance(kind, msgspec.inspect.UnionType):
            kind = next((t for t in kind.types if isinstance(t, numbers)), kind)
        # msgspec folds plain constraints into the number type; `Metadata` wraps it only
        # when there is more (a description, extra JSON schema).
        inner = kind.type if isinstance(kind, msgspec.inspect.Metadata) else kind
        if not isinstance(inner, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            continue
        low, exclusive = (inner.ge, False) if inner.ge is not None else (inner.gt, True)
        prop = (schema.properties or {}).get(field.encode_name)
        if low is None or not isinstance(prop, Schema):
            continue
        for branch in [prop, *(prop.one_of or [])]:
            if not isinstance(branch, Schema) or branch.type not in (
                OpenAPIType.INTEGER,
                OpenAPIType.NUMBER,
            ):
                continue
            if exclusive and branch.exclusive_minimum is None:
                branch.exclusive_minimum = low
            elif not exclusive and branch.minimum is None:
                branch.minimum = low


def _key_names(schema: Schema, info: msgspec.inspect.StructType) -> None:
    """`propertyNames` of a mapping keyed by a closed vocabulary (`dict[ContactType, ...]`),
    which Litestar leaves out: msgspec refuses any other key, so the document must too."""
    for field in info.fields:
        kind = field.type
        if not isinstance(kind, msgspec.inspect.DictType):
            continue
        key = kind.key_type
        if not isinstance(key, msgspec.inspect.LiteralType):
            continue
        prop = (schema.properties or {}).get(field.encode_name)
        if isinstance(prop, Schema):
            prop.property_names = Schema(enum=list(key.values))


def _formats_into_branches(schema: Schema) -> None:
    """A format declared on a nullable property (`X | None` is a `oneOf`) belongs to its
    string branch, where it replaces Litestar's own (`date-time` for a future time): a
    format beside the branches would leave two to choose from."""
    for prop in (schema.properties or {}).values():
        if not isinstance(prop, Schema) or prop.format is None or not prop.one_of:
            continue
        strings = [b for b in prop.one_of if isinstance(b, Schema) and b.type == OpenAPIType.STRING]
        for branch in strings:
            branch.format = prop.format
        if strings:
            prop.format = None


def _describe(schema: Schema, struct: type) -> None:
    """The Struct's docstring (first paragraph) and the glossary's text for each property
    that has no description of its own."""
    doc = (struct.__doc__ or "").strip()
    if doc and not schema.description and doc != (msgspec.Struct.__doc__ or "").strip():
        schema.description = " ".join(doc.split("\n\n", 1)[0].split())
    for name, prop in (schema.properties or {}).items():
        if isinstance(prop, Schema | Reference) and not prop.description:
            prop.description = field_glossary.describe(struct.__name__, name)


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's Struct schema plus `additionalProperties: false`, the catalogues'
    vocabularies on request bodies, and `__openapi__`."""

    def __init__(
        self,
        vocabularies: tuple[Vocabulary, ...] = (),
        fit: PurposeFit | None = None,
        policies: Policies | None = None,
    ) -> None:
        self.vocabularies = vocabularies
        self.fit = fit
        self.policies = policies

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        info = msgspec.inspect.type_info(struct)
        _describe(schema, struct)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            # A request body: refuses what it does not define, and names catalogue entries.
            schema.additional_properties = False
            _item_limits(schema, info)
            _lower_bounds(schema, info)
            _key_names(schema, info)
            _formats_into_branches(schema)
            for name, prop in (schema.properties or {}).items():
                if not isinstance(prop, Schema):
                    continue
                for vocabulary in self.vocabularies:
                    if name in vocabulary.single or name in vocabulary.lists:
                        _restrict(prop, vocabulary, is_list=name in vocabulary.lists)
                    elif name in vocabulary.map_keys:
                        prop.property_names = Schema(enum=list(vocabulary.values))
                    elif name in vocabulary.map_values and isinstance(
                        prop.additional_properties, Schema
                    ):
                        prop.additional_properties.enum = list(vocabulary.values)
        for key, value in getattr(struct, OPENAPI_EXTRA, {}).items():
            setattr(schema, key, value)
        where = getattr(struct, PURPOSE_FIT, None)
        if where is not None and self.fit is not None:
            add_purpose_fit(schema, where, self.fit)
        rules = getattr(struct, CATALOGUE_EXTRA, None)
        if rules is not None and self.policies is not None:
            schema.all_of = [*(schema.all_of or []), *rules(self.policies)]
        return schema
