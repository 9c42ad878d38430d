"""Client certificates: an internal system authenticates with mutual TLS instead of a key.

`tresor serve --tls-cert --tls-key --client-ca` has the TLS layer verify a presented client
certificate against the CA; this module maps a verified certificate's subject to the API
client bound to it (`clients.cert_subject`, set by `tresor clients cert NAME --subject`).
Subjects are compared in one normal form, RFC 4514 as `cryptography` writes it, so
"CN=billing, O=Example" given at the command line matches the certificate's "CN=billing,O=Example".
A revoked client is no client, whatever its certificate says; an unbound subject is
refused like a wrong key.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from vault.admin.clients import ClientInfo
from vault.admin.clients import info_of as client_info
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.crypto.certificates import normal_subject
from vault.errors import Conflict, InvalidInput, NotFound, Unavailable
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext

_MAX_SUBJECT = 500


def normalise_subject(text: str) -> str:
    """A distinguished name in RFC 4514 form as `cryptography` writes it, or `InvalidInput`."""
    # Spaces after the separators, as people write names, are not part of RFC 4514.
    compact = re.sub(r"(?<!\\)([,+])\s+", r"\1", text.strip())
    try:
        normal = normal_subject(compact)
    except ValueError:
        raise InvalidInput(
            "bad certificate subject", {"subject": "an RFC 4514 name such as CN=billing,O=Example"}
        ) from None
    if not normal or len(normal) > _MAX_SUBJECT:
        raise InvalidInput("bad certificate subject", {"subject": "empty or too long"})
    return normal


async def bind_certificate(
    ctx: VaultContext, actor: Actor, name: str, subject: str | None
) -> str | None:
    """Bind the certificate subject to the active client `name` (None unbinds); audited.
    Returns the subject as stored. A subject bound to another client is a `Conflict`."""
    normal = normalise_subject(subject) if subject is not None else None
    now = ctx.clock.now()
    try:
        async with ctx.transaction() as conn:
            result = await conn.execute(
                update(clients)
                .where(clients.c.name == name)
                .where(clients.c.revoked_at.is_(None))
                .values(cert_subject=normal)
            )
            if result.rowcount != 1:
                raise NotFound(f"no active client named {name}")
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.CLIENT_CERTIFICATE,
                decision=Decision.ALLOW,
                detail={"client": name, "cert_subject": normal},
            )
    except Unavailable as exc:
        if "cert_subject" in str(exc.__cause__):
            raise Conflict("that certificate subject is bound to another client") from None
        raise
    return normal


class CertificateAuthenticator:
    """The client bound to a verified certificate subject, with a short-lived cache like the
    key authenticator's (`ttl` bounds how late a revocation or unbinding takes effect)."""

    def __init__(self, ctx: VaultContext, ttl: float) -> None:
        self._ctx = ctx
        self._ttl = ttl
        self._cache: dict[str, tuple[float, ClientInfo | None]] = {}

    async def authenticate(self, subject: str) -> ClientInfo | None:
        hit = self._cache.get(subject)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        read_at = time.monotonic()
        async with self._ctx.transaction() as conn:
            row = (
                await conn.execute(select(clients).where(clients.c.cert_subject == subject))
            ).first()
        info = None if row is None or row.revoked_at is not None else client_info(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[subject] = (read_at, info)
        return info
