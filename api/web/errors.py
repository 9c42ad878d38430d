"""Error pages: a browser surface answers every error with a page whose status and texts
come from the one error table (`api.errors`), never with problem+json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response

from api import errors
from api.problems import exception_handlers

#: Renders the surface's message page: (request, status, heading id, text id, headers).
MessagePage = Callable[
    [Request[Any, Any, Any], int, str, str, "dict[str, str] | None"], Response[Any]
]


def error_page(
    request: Request[Any, Any, Any], exc: Exception, message: MessagePage
) -> Response[Any]:
    """The page for `exc`: the table's status, heading and text, its retry headers, and the
    same log line as the JSON answer."""
    row = errors.page_row(exc)
    errors.log_answer(exc, row)
    return message(request, row.status, row.title, row.text, errors.headers_for(exc, row))


def every_error(handler: Any) -> dict[Any, Any]:
    """Exception handlers sending every error the app answers to `handler`. Litestar takes
    the most specific class over all layers, so a controller's `Exception` alone would lose
    to the app's `HTTPException` handler and a page would turn into problem+json."""
    return dict.fromkeys(exception_handlers, handler)
