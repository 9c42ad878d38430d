"""Validation errors as `{"field", "message"}` items that never quote what was submitted.

msgspec and Litestar word their messages for developers: `Invalid enum value 'note'`,
`Object contains unknown field `erika@example.org``, and our own unknown-query check names
the unknown key. Each of those hands client input back (into the response, and from there
into proxies' and clients' logs), and client input is where contact data turns up. So:

- a message that quotes a value is rewritten to name the rule and, where the operation's
  schema says, the allowed values or fields;
- any other message is kept only in a shape known to carry nothing but types, bounds,
  patterns and field names of the schema; anything else becomes "is invalid";
- a field is named only if the operation defines it: a parameter by its name, a part of the
  body by its JSON Pointer (`/evidence/method`, `/contacts/0/channel`; `""` is the whole
  body); an unknown parameter is named by where it was (`query`, `path`, `header`), an
  unknown body field by the object holding it;
- every failing part of the body is listed, not only the first msgspec met
  (`api.body_errors`).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec.inspect as mi
from litestar import Request
from litestar.types import Empty

from api.body_errors import dotted_to_pointer, failing_fields, split_message
from api.request_body import decoded_json

_ENUM = re.compile(r"^Invalid (?:enum )?value\b")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field\b")
#: Messages that name only schema types, bounds, patterns and field names (msgspec's own
#: start upper-case; the vault's and the controllers' lower-case, without quotes).
_SAFE = re.compile(
    r"^(?:Expected `[^`']+`(?:, got `[^`']+`| matching regex '.*'| [^`'\"]*)?"
    r"|Object missing required field `[A-Za-z_][A-Za-z0-9_]*`"
    r"|(?:Invalid|Integer|Number|Duration) [A-Za-z0-9 -]*"
    r"|[a-z][^`'\"]*)$",
    re.DOTALL,
)
#: msgspec's syntax errors: a fixed description (no input) and the byte offset.
_JSON_SYNTAX = re.compile(r"^JSON is malformed: ([a-z ,':{}\[\]\"]{1,60}) \(byte (\d+)\)$")
_INDEX = re.compile(r"\[[^\]]*\]")
#: Handler arguments that are not client input.
_INJECTED = frozenset({"request", "vault", "scope", "state", "headers", "cookies", "socket"})
_SOURCES = frozenset({"query", "path", "header", "cookie", "body"})
_MAX_LISTED = 30
#: A message quoting a longer pattern (one listing character ranges) names it instead.
_MAX_MESSAGE = 160


def describe(request: Request[Any, Any, Any], items: list[Any]) -> list[dict[str, str]]:
    """Safe `{"field", "message"}` items for the `extra` of a `ValidationException`."""
    schema = _operation_schema(request)
    items = [item for item in items if isinstance(item, dict)]
    body = [item for item in items if _is_body(item)]
    out = [_describe_parameter(request, schema, item) for item in items if not _is_body(item)]
    failures = body_failures(request) if body else []
    if not failures:  # the body's items as the signature reported them
        failures = [_litestar_body_item(item) for item in body]
    for where, message in failures:
        types = schema.get(_schema_path(where), [])
        out.append({"field": where, "message": _message(message, types)})
    return out


def body_field(request: Request[Any, Any, Any], key: str) -> str:
    """A domain error's field as the answer names it: a body field's dotted path as a JSON
    Pointer (`evidence.touchpoint` -> `/evidence/touchpoint`), a parameter by its name."""
    schema = _operation_schema(request)
    if key in schema and key != "" and not _is_parameter(request, key):
        return dotted_to_pointer(key)
    head = key.split(".", 1)[0]
    if "." in key and head in schema and not _is_parameter(request, head):
        return dotted_to_pointer(key)
    return key


def takes_body(request: Request[Any, Any, Any]) -> bool:
    """Whether the operation takes a request body (its handler has a `data` argument)."""
    return _is_parameter(request, "data")


def _is_body(item: dict[str, Any]) -> bool:
    return item.get("source") == "body" or str(item.get("key") or "") in ("data", "body", "")


def _is_parameter(request: Request[Any, Any, Any], name: str) -> bool:
    try:
        return name in request.route_handler.parsed_fn_signature.parameters
    except Exception:  # noqa: BLE001 - no handler resolved
        return False


def _describe_parameter(
    request: Request[Any, Any, Any], schema: dict[str, list[Any]], item: dict[str, Any]
) -> dict[str, str]:
    key = _INDEX.sub("", str(item.get("key") or ""))
    field = _public_name(request, key) if key in schema else _source(request, item, key)
    return {"field": field, "message": _message(str(item.get("message", "")), schema.get(key, []))}


def body_failures(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    """Every failing part of the decoded body, converted again against the handler's body
    type; empty when the body was not decoded or the handler takes none."""
    raw = decoded_json(request)
    try:
        handler = request.route_handler
        definition = handler.parsed_fn_signature.parameters.get("data")
        decoder = handler.default_deserializer
    except Exception:  # noqa: BLE001 - no handler resolved
        return []
    if raw is Empty or definition is None:
        return []
    return failing_fields(raw, definition.annotation, decoder)


def _litestar_body_item(item: dict[str, Any]) -> tuple[str, str]:
    key = str(item.get("key") or "")
    path = "" if key in ("data", "body") else key
    message, _ = split_message(str(item.get("message", "")))
    return dotted_to_pointer(_INDEX.sub("", path)), message


def _schema_path(where: str) -> str:
    """A JSON Pointer as the dotted schema path `_operation_schema` keys (indexes dropped)."""
    steps = [s.replace("~1", "/").replace("~0", "~") for s in where.split("/")[1:]]
    return ".".join(s for s in steps if not s.isdigit())


def json_syntax(message: str) -> str:
    """The message for a body that is not JSON: msgspec's description of the syntax error
    and its byte offset (never the bytes around it), or just that it is not JSON."""
    match = _JSON_SYNTAX.match(message)
    if match:
        return f"is not valid JSON: {match.group(1)} (byte {match.group(2)})"
    return "is not valid JSON"


def _message(message: str, types: list[Any]) -> str:
    if _ENUM.match(message):
        allowed = _allowed_values(types)
        return f"is not one of: {', '.join(allowed)}" if allowed else "is not an allowed value"
    if _UNKNOWN_FIELD.match(message):
        names = _field_names(types)
        suffix = f" (allowed: {', '.join(names)})" if names else ""
        return "contains a field this operation does not define" + suffix
    if message.startswith("Expected `str` matching regex") and len(message) > _MAX_MESSAGE:
        return "does not match the pattern the document states for it"
    return message if _SAFE.match(message) else "is invalid"


def _source(request: Request[Any, Any, Any], item: dict[str, Any], key: str) -> str:
    source = str(item.get("source") or "")
    if source in _SOURCES:
        return source
    return "query" if key in request.query_params else "request"


def _public_name(request: Request[Any, Any, Any], key: str) -> str:
    """A parameter's name as the client spells it (`type`, not the handler's `type_`)."""
    try:
        definition = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # noqa: BLE001 - no handler resolved
        return key
    kwarg = getattr(definition, "kwarg_definition", None)
    # QueryParameter(name=...) or Parameter(query=...), header=..., cookie=...
    for alias in ("name", "query", "header", "cookie"):
        if isinstance(getattr(kwarg, alias, None), str):
            return str(getattr(kwarg, alias))
    return key


def _operation_schema(request: Request[Any, Any, Any]) -> dict[str, list[Any]]:
    """Every field path the operation defines, with its msgspec type descriptions: the
    handler's parameters by name, the body's fields as dotted paths ("" is the body)."""
    out: dict[str, list[Any]] = {}
    try:
        parameters = request.route_handler.parsed_fn_signature.parameters
    except Exception:  # noqa: BLE001 - no handler resolved: nothing is known
        return out
    for name, definition in parameters.items():
        if name in _INJECTED:
            continue
        try:
            info = mi.type_info(definition.annotation)
        except Exception:  # noqa: BLE001, S112 - not a data type (an injected dependency)
            continue
        path = "" if name == "data" else name
        out.setdefault(path, []).append(info)
        _walk(info, path, out, 0)
    return out


def _walk(info: Any, path: str, out: dict[str, list[Any]], depth: int) -> None:
    if depth > 16:
        return
    for inner in _unwrap(info):
        if isinstance(inner, mi.StructType | mi.DataclassType | mi.TypedDictType):
            for f in inner.fields:
                child = f"{path}.{f.encode_name}" if path else f.encode_name
                out.setdefault(child, []).append(f.type)
                _walk(f.type, child, out, depth + 1)


def _unwrap(info: Any) -> list[Any]:
    """The types a value at one path may have: through Optional/unions, metadata, and the
    items of lists and dict values (an index in a path is not a field)."""
    if isinstance(info, mi.Metadata):
        return _unwrap(info.type)
    if isinstance(info, mi.UnionType):
        return [t for u in info.types for t in _unwrap(u)]
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _unwrap(info.item_type)
    if isinstance(info, mi.DictType):
        return _unwrap(info.value_type)
    return [info]


def _allowed_values(types: list[Any]) -> list[str]:
    values: list[str] = []
    for info in (t for typ in types for t in _unwrap(typ)):
        if isinstance(info, mi.LiteralType):
            values += [str(v) for v in info.values]
        elif isinstance(info, mi.EnumType):
            values += [str(m.value) for m in info.cls]
    return list(dict.fromkeys(values))[:_MAX_LISTED]


def _field_names(types: list[Any]) -> list[str]:
    names: list[str] = []
    for info in (t for typ in types for t in _unwrap(typ)):
        if isinstance(info, mi.StructType | mi.DataclassType | mi.TypedDictType):
            names += [f.encode_name for f in info.fields]
    return list(dict.fromkeys(names))[:_MAX_LISTED]
