"""Strict query strings: a handler names the query parameters it takes (`opt=query(...)`),
and `reject_unknown_query`, its before-request hook, refuses any other with a 422, so a
mistyped filter cannot silently widen a search or a listing to everything.

The hook runs before Litestar reads the body, so a request with an unknown parameter and a
bad body would otherwise be answered for the parameter alone; the hook reads the body too
and lists its failing fields in the same answer (every failure in one 422)."""

from __future__ import annotations

import contextlib
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException, ValidationException

from api.validation_errors import body_failures, takes_body


async def reject_unknown_query(request: Request[Any, Any, Any]) -> None:
    """Unknown query parameters are refused (422), not ignored: a mistyped filter on an
    audit search would otherwise silently widen the result to everything."""
    allowed: frozenset[str] = request.route_handler.opt.get("query", frozenset())
    unknown = sorted(k for k in request.query_params if k not in allowed)
    if unknown:
        extra: list[dict[str, str]] = [
            {"key": k[:40], "message": "is not a parameter of this operation"} for k in unknown
        ]
        if takes_body(request):
            # Decoded once and kept on the scope, where the error's description reads it;
            # a body that is not JSON at all stays unread (the parameter is reason enough).
            with contextlib.suppress(SerializationException, ValueError):
                await request.json()
            if body_failures(request):
                extra.append({"source": "body", "key": "data", "message": "is invalid"})
        raise ValidationException("unknown query parameter", extra=extra)


def query(*names: str) -> dict[str, Any]:
    """Handler `opt` naming the query parameters the handler takes."""
    return {"query": frozenset(names)}
