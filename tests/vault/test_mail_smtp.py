"""Mail as a real sender sends it, against a real SMTP server started by the test
(aiosmtpd): `Date` and `Message-ID`, text and HTML alternatives in the mail's language, and
STARTTLS required (not "when offered") where the settings ask for it."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.server import free_port
from vault.errors import Unavailable
from vault.mail import SmtpMailer

LINK = "http://127.0.0.1:8000/confirm/AbC_d-9"


class Inbox:
    """An aiosmtpd handler keeping each message and whether its session was encrypted."""

    def __init__(self) -> None:
        self.messages: list[tuple[EmailMessage, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((parsed, session.ssl is not None))
        return "250 OK"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _server(inbox: Inbox, **smtp_options: Any) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **smtp_options)
    controller.start()
    return controller


@pytest.fixture
def plain_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = _server(inbox)
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def _message(language: str = "de") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "tresor@vault.example"
    msg["To"] = "erika@example.org"
    msg["Subject"] = "Bitte bestätigen Sie Ihre Einwilligung"
    msg.set_content(f"Hallo,\n\nbitte öffnen Sie diesen Link:\n\n  {LINK}\n\n<Ihr Tresor>\n")
    msg["Content-Language"] = language
    return msg


async def test_a_mail_leaves_dated_with_an_id_as_text_and_html_in_its_language(
    plain_server: tuple[Inbox, int], clock
):
    """The server receives `Date` (the vault's clock), a `Message-ID` in the sender's
    domain, and multipart/alternative: the text as written and an HTML rendering with the
    mail's language, the link as a link and everything else escaped."""
    inbox, port = plain_server
    await SmtpMailer(f"smtp://127.0.0.1:{port}", "none", clock).send(_message("de"))
    ((received, _),) = inbox.messages
    assert parsedate_to_datetime(received["Date"]) == clock.now().replace(microsecond=0)
    assert str(received["Message-ID"]).endswith("@vault.example>")
    assert received.get_content_type() == "multipart/alternative"
    assert received["Content-Language"] == "de"
    text = received.get_body(("plain",)).get_content()
    assert "bitte öffnen Sie diesen Link" in text and LINK in text
    page = received.get_body(("html",)).get_content()
    assert '<html lang="de">' in page and f'<a href="{LINK}">{LINK}</a>' in page
    assert "&lt;Ihr Tresor&gt;" in page and "<Ihr Tresor>" not in page


async def test_starttls_is_required_not_used_when_offered(
    plain_server: tuple[Inbox, int], certificate: tuple[Path, Path], monkeypatch, clock
):
    """With `starttls` a server that does not offer it gets no mail (the mailer is
    unavailable instead of sending in clear); one that offers it, with a certificate the
    vault trusts, receives the mail over TLS."""
    inbox, port = plain_server
    with pytest.raises(Unavailable):
        await SmtpMailer(f"smtp://127.0.0.1:{port}", "starttls", clock).send(_message())
    with pytest.raises(Unavailable):
        await SmtpMailer(f"smtp://127.0.0.1:{port}", "starttls", clock).check()
    assert inbox.messages == []

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    secure = Inbox()
    controller = _server(secure, tls_context=context, require_starttls=True)
    try:
        mailer = SmtpMailer(f"smtp://127.0.0.1:{controller.port}", "starttls", clock)
        with pytest.raises(Unavailable):  # a certificate nobody vouches for is refused
            await mailer.send(_message())
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        await mailer.check()
        await mailer.send(_message())
    finally:
        controller.stop()
    ((received, encrypted),) = secure.messages
    assert encrypted and received["To"] == "erika@example.org"
