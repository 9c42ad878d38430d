"""The shared cookie and CSRF plumbing (api/web/cookies.py) of the privacy centre and the
DPO console."""

from __future__ import annotations

from types import SimpleNamespace

from litestar.testing import RequestFactory

from api.dpo import session as dpo_session
from api.privacy import pages as privacy
from api.web import cookies
from vault.crypto import DerivedKeys, derive_key


def _request(scheme: str = "http", public_url: str = "http://localhost"):
    app = SimpleNamespace(
        state=SimpleNamespace(
            vault=SimpleNamespace(settings=SimpleNamespace(public_url=public_url))
        )
    )
    request = RequestFactory().get("/privacy")
    request.scope["scheme"] = scheme
    request.scope["litestar_app"] = app
    return request


def test_both_surfaces_set_the_same_protections_on_their_session_cookie():
    """HttpOnly, SameSite=Strict, scoped to the surface's path, and Secure over TLS or behind
    an https public URL; clearing expires the cookie on the same path."""
    for surface in (privacy.SURFACE, dpo_session.SURFACE):
        plain = cookies.session_cookie(_request(), surface, "tok", 60)
        assert (plain.httponly, plain.samesite, plain.path, plain.secure) == (
            True,
            "strict",
            surface.path,
            False,
        )
        assert cookies.session_cookie(_request("https"), surface, "tok", 60).secure
        proxied = _request(public_url="https://privacy.example")
        assert cookies.session_cookie(proxied, surface, "tok", 60).secure
        cleared = cookies.clear_session_cookie(_request(), surface)
        assert (cleared.value, cleared.max_age, cleared.path) == ("", 0, surface.path)


def test_each_surface_has_its_own_csrf_secret_derived_by_its_label():
    """A token of one surface is no token of the other: each surface's CSRF secret is the
    key derived under its own label, not the server secret itself."""
    secret = bytes(range(32))
    keys = DerivedKeys(secret)
    surfaces = (privacy.SURFACE, dpo_session.SURFACE)
    found = {cookies.csrf_secret(keys, s) for s in surfaces}
    assert found == {derive_key(secret, s.csrf_label).hex() for s in surfaces}
    assert len(found) == 2 and secret.hex() not in found
