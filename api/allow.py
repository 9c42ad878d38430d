"""`Allow` on `OPTIONS`: every method of the path, not only one controller's.

Litestar builds one `HTTPRoute` per path, and adds an `OPTIONS` handler when it creates the
first one. When a second controller registers a handler for the same path (`GET` and `POST
/v1/clients` live in different handlers, `POST` and `DELETE /self/v1/session` too), the route
is rebuilt from all handlers, but the `OPTIONS` handler it already holds is kept, and that
handler answers with the methods of the route it was made for: the first controller's only.
This hook sets `Allow` from the final route of the matched path template, so the answer
lists exactly the methods the path serves (and the OpenAPI document names).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

_ALLOW = b"allow"
#: A route's path names its parameters' types (`{subject_id:str}`); the matched template
#: in the scope does not.
_PARAM_TYPE = re.compile(r"\{(\w+):[^}]+\}")


def allow_header_hook() -> tuple[
    Callable[[Message, Scope], Awaitable[None]], Callable[[Litestar], None]
]:
    """A `before_send` hook and the function that binds it to the finished app (the routes
    exist only once `Litestar(...)` has returned)."""
    allowed: dict[str, bytes] = {}

    def bind(app: Litestar) -> None:
        for route in app.routes:
            if isinstance(route, HTTPRoute):
                allowed[_PARAM_TYPE.sub(r"{\1}", route.path)] = ", ".join(
                    sorted(route.methods)
                ).encode()

    async def set_allow(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        methods = allowed.get(scope.get("path_template", ""))
        if methods is None:
            return
        headers = [(k, v) for k, v in message.get("headers") or [] if k.lower() != _ALLOW]
        message["headers"] = [*headers, (_ALLOW, methods)]

    return set_allow, bind
