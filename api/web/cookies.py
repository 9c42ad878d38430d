"""Session cookies and the CSRF check of the browser surfaces, in one place.

Both surfaces keep their session in an HttpOnly, SameSite=Strict cookie scoped to their
path, and check every form post with Litestar's double-submit `CSRFMiddleware`. Secrets are
derived from the keyring's server key by label (`vault.crypto.KeyLabel`, HKDF; never one
key for two MACs), so every node sharing the keyring accepts a cookie or a form another
node issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from vault.crypto import DerivedKeys, KeyLabel


@dataclass(frozen=True, slots=True)
class Surface:
    """What tells one browser surface's cookies from the other's."""

    path: str
    session_cookie: str
    csrf_cookie: str
    #: The label the CSRF secret is derived under.
    csrf_label: KeyLabel


def csrf_secret(keys: DerivedKeys, surface: Surface) -> str:
    """The surface's CSRF signing secret: the same on every node sharing the keyring, so a
    form served by one node posts to any other."""
    return keys.key(surface.csrf_label).hex()


def is_secure(scope: Scope) -> bool:
    """Cookies are Secure when the request came over TLS, or when the public URL says https
    (served behind a TLS-terminating proxy)."""
    if scope.get("scheme") == "https":
        return True
    app = scope.get("litestar_app")
    vault = getattr(getattr(app, "state", None), "vault", None)
    return bool(vault and str(vault.settings.public_url).startswith("https://"))


def session_cookie(
    request: Request[Any, Any, Any], surface: Surface, token: str, max_age: int
) -> Cookie:
    """The session cookie: HttpOnly, SameSite=Strict, scoped to the surface's path."""
    return Cookie(
        key=surface.session_cookie,
        value=token,
        path=surface.path,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=is_secure(request.scope),
    )


def clear_session_cookie(request: Request[Any, Any, Any], surface: Surface) -> Cookie:
    """The session cookie, emptied and expired (sign-out, a session that ended)."""
    return session_cookie(request, surface, "", 0)


class CsrfMiddleware:
    """Litestar's `CSRFMiddleware` for one surface, built on first use (the keyring, and so
    the secret, is loaded at start-up), with a Secure cookie over TLS.

    Added to a controller as `DefineMiddleware(CsrfMiddleware, surface=...)`.
    """

    def __init__(self, app: ASGIApp, surface: Surface) -> None:
        self.app = app
        self.surface = surface
        self._inner: dict[bool, CSRFMiddleware] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure = is_secure(scope)
        inner = self._inner.get(secure)
        if inner is None:
            vault = scope["litestar_app"].state.vault
            inner = CSRFMiddleware(
                self.app,
                CSRFConfig(
                    secret=csrf_secret(vault.keys, self.surface),
                    cookie_name=self.surface.csrf_cookie,
                    cookie_path=self.surface.path,
                    cookie_secure=secure,
                    cookie_httponly=True,
                    cookie_samesite="strict",
                ),
            )
            self._inner[secure] = inner
        await inner(scope, receive, send)
