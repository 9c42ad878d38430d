"""Every failing field of a JSON body, by its JSON Pointer (RFC 6901), not just the first.

msgspec stops at the first error it meets, so a client fixing a body learns one mistake per
round trip. When a body fails, `failing_fields` converts it again piece by piece with the
same types and the same msgspec conversion the handler's signature uses: each field of a
Struct on its own, each item of a list on its own, descending only into the parts that
fail. What the pieces cannot explain on their own (a rule of the whole object, such as
"exactly one of"), is reported where msgspec reported it.

Pointers are built from the schema's field names and list indexes only: an unknown field is
reported at the object that holds it (its name is client input and may be contact data),
and a dict's keys are never spelled out.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

#: The location msgspec appends to its messages: `... - at `$.a.b[0]``.
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
#: One step of msgspec's location: `.name` or `[index]` (`[...]` for a dict's key).
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\.\.\.)\]")
_MAX_DEPTH = 16

Decoder = Callable[[type, Any], Any]


def pointer(*steps: str | int) -> str:
    """An RFC 6901 JSON Pointer from field names and indexes (`~` and `/` escaped)."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in steps)


def dotted_to_pointer(path: str) -> str:
    """`evidence.method` -> `/evidence/method` (a domain error's dotted field path)."""
    return pointer(*path.split(".")) if path else ""


def split_message(message: str, base: str = "") -> tuple[str, str]:
    """msgspec's message without its location, and the location as a JSON Pointer below
    `base`; a dict key's step ends the pointer (its key is client input)."""
    match = _AT.match(message)
    if match is None:  # cannot happen: the pattern matches any string
        return message, base
    where = base
    for step in _STEP.finditer(match.group("path") or ""):
        name, index = step.groups()
        if index == "...":
            break
        where += pointer(name if name is not None else index)
    return match.group("message"), where


def failing_fields(value: Any, annotation: Any, decoder: Decoder) -> list[tuple[str, str]]:
    """`(pointer, msgspec message)` for every failing part of `value` as `annotation`;
    empty if the value converts."""
    return _failures(value, annotation, decoder, "", 0)


def _convert(value: Any, annotation: Any, decoder: Decoder) -> None:
    msgspec.convert(value, type=annotation, strict=False, dec_hook=decoder, str_keys=True)


def _failures(
    value: Any, annotation: Any, decoder: Decoder, where: str, depth: int
) -> list[tuple[str, str]]:
    try:
        _convert(value, annotation, decoder)
    except msgspec.ValidationError as exc:
        message, at = split_message(str(exc), where)
        first = [(at, message)]
    except (TypeError, ValueError):
        return [(where, "is invalid")]
    else:
        return []
    if depth >= _MAX_DEPTH:
        return first
    struct = _only(annotation, _is_struct)
    if struct is not None and isinstance(value, dict):
        found = _struct_failures(value, struct, decoder, where, depth)
        return found or first
    item = _list_item(annotation)
    if item is not None and isinstance(value, list):
        found = [
            failure
            for index, element in enumerate(value)
            for failure in _failures(element, item, decoder, where + pointer(index), depth + 1)
        ]
        return found or first
    return first


def _struct_failures(
    value: dict[str, Any], struct: type, decoder: Decoder, where: str, depth: int
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    fields = msgspec.structs.fields(struct)
    for field in fields:
        at = where + pointer(field.encode_name)
        if field.encode_name in value:
            found += _failures(value[field.encode_name], field.type, decoder, at, depth + 1)
        elif field.required:
            found.append((at, "is required"))
    known = {field.encode_name for field in fields}
    config = getattr(struct, "__struct_config__", None)
    if getattr(config, "forbid_unknown_fields", False) and any(k not in known for k in value):
        found.append((where, "Object contains unknown field"))
    return found


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a type: through `Annotated` and unions (`X | None`)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_struct(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, msgspec.Struct)


def _only(annotation: Any, test: Callable[[Any], bool]) -> Any:
    """The one alternative passing `test` (None besides it allowed), else None."""
    matching = [m for m in _members(annotation) if test(m)]
    others = [m for m in _members(annotation) if not test(m) and m is not type(None)]
    return matching[0] if len(matching) == 1 and not others else None


def _list_item(annotation: Any) -> Any:
    sequence = _only(annotation, lambda m: typing.get_origin(m) in (list, tuple, set, frozenset))
    if sequence is None:
        return None
    args = typing.get_args(sequence)
    if typing.get_origin(sequence) is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return None
    return args[0] if args else None
