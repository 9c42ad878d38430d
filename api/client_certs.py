"""Mutual TLS for `tresor serve --tls-cert --tls-key --client-ca` (issue 15 item 6).

The TLS layer (Python's `ssl`, driven by uvicorn) asks every client for a certificate
(`CERT_OPTIONAL`: systems with a bearer key and browsers without one still connect) and
refuses the handshake for one the CA did not issue. uvicorn does not hand the verified peer
certificate to the application, so `TlsHttpProtocol` adds it to each request's scope as the
ASGI TLS extension (`scope["extensions"]["tls"]`: `client_cert_chain`, `client_cert_name`).
Only the server writes the scope, so a client cannot forge it with a header; an app served
without TLS never sees the extension. `certificate_client` maps the subject to the API
client bound to it (`vault.admin.certificates`).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from litestar.connection import ASGIConnection
from uvicorn.protocols.http.h11_impl import H11Protocol

from vault.admin.certificates import CertificateAuthenticator
from vault.admin.clients import ClientInfo
from vault.crypto.certificates import presented_certificate

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    _Base = H11Protocol  # type: ignore[assignment,misc]


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection whose client presented a certificate the
    TLS layer verified; None over plain TCP or without a certificate."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    cert = presented_certificate(der)
    return {
        "server_cert": None,
        "client_cert_chain": [cert.pem],
        "client_cert_name": cert.subject,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


class TlsHttpProtocol(_Base):
    """uvicorn's HTTP protocol, adding the verified client certificate to every request's
    scope on its connection (given to uvicorn as `http=`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport)
        if tls is None:
            return
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
            await inner(scope, receive, send)

        self.app = app


def certificate_subject(scope: Any) -> str | None:
    """The verified client certificate's subject, when the server put one in the scope."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    name = tls.get("client_cert_name")
    return name if isinstance(name, str) and name else None


async def certificate_client(connection: ASGIConnection[Any, Any, Any, Any]) -> ClientInfo | None:
    """The API client bound to the connection's verified client certificate, if any."""
    subject = certificate_subject(connection.scope)
    if subject is None:
        return None
    authenticator: CertificateAuthenticator | None = getattr(
        connection.app.state, "certificates", None
    )
    return None if authenticator is None else await authenticator.authenticate(subject)
