"""Strict query strings: a handler names the query parameters it takes (`opt=query(...)`),
and `reject_unknown_query`, its before-request hook, refuses any other with a 400, so a
mistyped filter cannot silently widen a search or a listing to everything."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ValidationException


async def reject_unknown_query(request: Request[Any, Any, Any]) -> None:
    """Unknown query parameters are refused (400), not ignored: a mistyped filter on an
    audit search would otherwise silently widen the result to everything."""
    allowed: frozenset[str] = request.route_handler.opt.get("query", frozenset())
    unknown = sorted(k for k in request.query_params if k not in allowed)
    if unknown:
        raise ValidationException(
            "unknown query parameter",
            extra=[
                {"key": k[:40], "message": "is not a parameter of this operation"} for k in unknown
            ],
        )


def query(*names: str) -> dict[str, Any]:
    """Handler `opt` naming the query parameters the handler takes."""
    return {"query": frozenset(names)}
