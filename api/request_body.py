"""JSON request bodies: a nesting limit checked on the raw bytes before anything decodes them.

msgspec (like the standard library) decodes nested arrays and objects recursively, so a body
of a few tens of kilobytes nested 32,000 levels deep ends in `RecursionError` and a 500,
before any handler or validation runs, and on an endpoint that needs no authentication. No
request body of the API nests deeper than a handful of levels; `MAX_JSON_DEPTH` leaves room
and refuses the rest with a 400 problem+json (like malformed JSON: the body is refused before
it is read as data, so it is not a validation failure, which is a 422).

The check lives in the app's request class, in `Request.json()`, the one call through which
Litestar decodes every JSON body (`data: JSONBody[...]` and handlers reading the body alike).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState

MAX_JSON_DEPTH = 64

#: A complete JSON string: quote, then runs of ordinary characters or escape pairs, quote.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Every byte except the four brackets, to delete in one C-level pass.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def json_depth(raw: bytes, *, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in `raw`, counted without recursion; counting stops
    at `limit + 1` ("deeper than the limit").

    Strings are removed first, so brackets and escaped quotes inside them do not count.
    For invalid JSON the count may be off, but only beyond the point where the decoder
    stops anyway: up to the first error both read strings the same way.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def too_deep(raw: bytes, *, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `raw` nests deeper than `limit`. A body with no more opening brackets than
    the limit cannot, which two C-level counts settle for nearly every request."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return json_depth(raw, limit=limit) > limit


class BodyTooDeep(ClientException):
    """A JSON body nested deeper than `MAX_JSON_DEPTH`: 400, answered like malformed JSON."""

    status_code = 400


def decoded_json(request: Request[Any, Any, Any]) -> Any:
    """The request's JSON body as already decoded for its handler, or `Empty` if it was not
    (read back when a validation error lists every failing field, without decoding twice)."""
    return ScopeState.from_scope(request.scope).json


def empty_body(request: Request[Any, Any, Any]) -> bool:
    """Whether the request's body was read and held nothing (not JSON at all: a 400)."""
    return ScopeState.from_scope(request.scope).body == b""


class DepthLimitedRequest(Request[Any, Any, Any]):
    """The app's request class: refuses a JSON body nested deeper than `MAX_JSON_DEPTH`
    with a 400 problem+json before it is decoded."""

    __slots__ = ()

    async def json(self) -> Any:
        decoded = self._json is not Empty or self._connection_state.json is not Empty
        if not decoded and too_deep(await self.body()):
            raise BodyTooDeep(
                detail="The request body nests too deeply; nothing was changed.",
                extra=[
                    {
                        "field": "body",
                        "message": f"nests deeper than {MAX_JSON_DEPTH} levels of arrays "
                        "and objects",
                    }
                ],
            )
        return await super().json()
