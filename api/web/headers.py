"""The one place that sets the security headers, on every response the app sends.

A `before_send` hook sees every response start, error responses and unmatched routes
included, so no controller can forget them (the double opt-in page and the HTML export
once did) and none sets them itself:

- every response: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (no URL,
  and so no confirmation token, travels to another site);
- every response except the public API documents under `/schema`: `Cache-Control: no-store`.
  Contact data leaves in JSON (lookups, the privacy centre, exports) as well as in pages,
  and no shared or browser cache may keep it; health, readiness and metrics are cheap and
  must not be answered from a cache either. Whatever a handler set is replaced;
- every response: the strict `Content-Security-Policy` (no script, no third-party anything,
  forms post only here, never framed) and `X-Frame-Options: DENY`. Pages need them most,
  but a redirect between pages or a JSON body opened in a browser tab is no place for
  script or framing either, and one rule for all leaves nothing to decide per response.
  The DPO console under `/dpo` also runs one script of its own origin (its copy buttons).
  The Swagger UI page under `/schema` is the one page that needs script and styles from
  its CDN; it carries no data and gets a policy that allows exactly that.
"""

from __future__ import annotations

from litestar.types import Message, Scope

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_REFERRER = (b"referrer-policy", b"no-referrer")
NO_STORE = (b"cache-control", b"no-store")
DENY_FRAMING = (b"x-frame-options", b"DENY")

#: The pages' policy: inline styles only (the templates carry their own CSS), no script.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: The DPO console: the pages' policy plus scripts from this server only (the copy buttons
#: of `api.dpo.copy_script`); still no inline script, nothing from elsewhere.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: The Swagger UI and ReDoc pages: their bundles and styles from this server
#: (`api.openapi_docs`, nothing from elsewhere), the inline start-up script, ReDoc's worker.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_CSP = b"content-security-policy"
_MANAGED = frozenset({NOSNIFF[0], NO_REFERRER[0], NO_STORE[0], DENY_FRAMING[0], _CSP})
_STRICT = (NOSNIFF, NO_REFERRER, DENY_FRAMING, (_CSP, PAGE_CSP.encode()))
_PRIVATE = [*_STRICT, NO_STORE]
_CONSOLE = [NOSNIFF, NO_REFERRER, DENY_FRAMING, (_CSP, CONSOLE_CSP.encode()), NO_STORE]
_SWAGGER = [NOSNIFF, NO_REFERRER, DENY_FRAMING, (_CSP, DOCS_CSP.encode())]


def is_public_document(path: str) -> bool:
    """The OpenAPI document and its viewers: the same for everyone, holding no data."""
    return path == "/schema" or path.startswith("/schema/")


def headers_for(path: str, content_type: bytes) -> list[tuple[bytes, bytes]]:
    """The security headers a response to `path` with (lower-cased) `content_type` carries."""
    if path == "/dpo" or path.startswith("/dpo/"):
        return _CONSOLE
    if not is_public_document(path):
        return _PRIVATE
    return _SWAGGER if content_type.startswith(b"text/html") else list(_STRICT)


async def add_security_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: replaces whatever the handler set for the managed headers."""
    if message["type"] != "http.response.start":
        return
    current = list(message.get("headers") or [])
    content_type = next((v for k, v in current if k.lower() == b"content-type"), b"")
    kept = [(k, v) for k, v in current if k.lower() not in _MANAGED]
    message["headers"] = kept + headers_for(scope.get("path", ""), content_type.lower())
