"""Structured JSON logs with a request id, and the ASGI middleware that assigns it.

Log lines carry ids, route templates, status codes and timings; never bodies, query strings
or exception messages (a database error message can quote bound parameters).
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SECRET_SEGMENTS = re.compile(r"(/confirm/)[^/?]+")

log = structlog.get_logger("tresor.http")


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """JSON lines to stdout (or `stream`); safe to call more than once."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level, logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    # httpx logs every request's URL at INFO: a recipient's webhook URL may carry a token
    # of the receiver's in its path, so the notice deliveries' URLs stay out of the logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def safe_path(path: str) -> str:
    """The request path with secret segments (confirmation tokens) masked."""
    return _SECRET_SEGMENTS.sub(r"\1***", path)


def ensure_request_id(scope: Scope) -> str:
    """The request's id, assigned once: a well-formed incoming X-Request-ID, else a new one.

    The middleware assigns it for requests that matched a route; requests that did not (404,
    405) never pass through middleware, so the error handler and `before_send` call this too.
    """
    state = scope.setdefault("state", {})
    request_id = state.get("request_id")
    if not request_id:
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else secrets.token_hex(16)
        state["request_id"] = request_id
    return str(request_id)


def _logged_path(scope: Scope) -> str:
    """The matched route's template, never the raw path: a raw path is client input and can
    carry contact data (an e-mail address where a subject id belongs). Unmatched paths are
    not logged at all."""
    template = scope.get("path_template")
    return safe_path(template) if template else "<unmatched>"


class RequestIdMiddleware:
    """Assigns each request an id (or keeps a well-formed X-Request-ID) and binds it to the
    log context; `before_send` writes the access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ensure_request_id(scope)
        scope["state"]["started"] = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        await self.app(scope, receive, send)


async def before_send(message: Message, scope: Scope) -> None:
    """Litestar hook that sees every response, error responses included: adds the
    X-Request-ID header and writes the one access log line."""
    if message["type"] == "http.response.start":
        request_id = ensure_request_id(scope)
        started = scope["state"].get("started")
        # Logged here, not in the middleware: errors raised by inner middleware (401) are
        # turned into responses outside it. The id is passed explicitly: for a request the
        # middleware never saw, the log context still holds the previous request's id.
        route = _logged_path(scope)
        log.info(
            "request",
            request_id=request_id,
            method=scope.get("method"),
            path=route,
            status=message["status"],
            ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
        )
        metrics.observe_response(str(scope.get("method")), route, message["status"], started)
        headers = list(message.get("headers", []))
        headers.append((b"x-request-id", request_id.encode()))
        message["headers"] = headers
