"""Client certificate bindings on both databases: subjects in one normal form, bound to one
active client at a time, audited, and resolved to the client only while it is active."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.support.factories import ADMIN, client_key
from vault.admin.certificates import CertificateAuthenticator, bind_certificate, normalise_subject
from vault.admin.clients import revoke_client
from vault.errors import Conflict, InvalidInput, NotFound
from vault.storage.audit_tables import audit_events


def test_subjects_are_compared_in_one_normal_form():
    """Spaces after separators are dropped, escapes kept; what is no DN is `InvalidInput`."""
    assert normalise_subject(" CN=billing, O=Example ") == "CN=billing,O=Example"
    assert normalise_subject(r"CN=a\, b,O=X") == r"CN=a\, b,O=X"
    for bad in ("", "billing", "CN=" + "x" * 600):
        with pytest.raises(InvalidInput):
            normalise_subject(bad)


async def test_a_bound_subject_names_its_client_until_it_is_revoked(vault):
    """The authenticator finds the client bound to a subject, nothing for another subject,
    and nothing once the client is revoked; the binding is audited with the subject."""
    await client_key(vault, "billing", "writer")
    assert await bind_certificate(vault, ADMIN, "billing", "CN=billing, O=Example") == (
        "CN=billing,O=Example"
    )
    certificates = CertificateAuthenticator(vault, ttl=0.0)
    client = await certificates.authenticate("CN=billing,O=Example")
    assert client is not None and client.name == "billing"
    assert await certificates.authenticate("CN=someone,O=Example") is None
    await revoke_client(vault, ADMIN, "billing")
    assert await certificates.authenticate("CN=billing,O=Example") is None
    async with vault.engine.connect() as conn:
        events = (
            await conn.execute(
                select(audit_events).where(audit_events.c.action == "admin:client:certificate")
            )
        ).all()
    assert len(events) == 1 and "CN=billing,O=Example" in str(events[0].detail)


async def test_one_subject_binds_one_client_and_only_an_active_one(vault):
    """A subject bound to another client is a conflict, an unknown client is not found,
    and unbinding frees the subject for another client."""
    await client_key(vault, "billing", "writer")
    await client_key(vault, "crm", "writer")
    await bind_certificate(vault, ADMIN, "billing", "CN=billing")
    with pytest.raises(Conflict):
        await bind_certificate(vault, ADMIN, "crm", "CN=billing")
    with pytest.raises(NotFound):
        await bind_certificate(vault, ADMIN, "nobody", "CN=nobody")
    assert await bind_certificate(vault, ADMIN, "billing", None) is None
    assert await bind_certificate(vault, ADMIN, "crm", "CN=billing") == "CN=billing"
